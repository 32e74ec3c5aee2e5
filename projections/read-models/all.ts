import type { Projection } from "../projector.js";
import { artworksProjection } from "./artworks.js";
import { salesProjection } from "./sales.js";
import { walletsProjection } from "./wallets.js";

/** Every read model, each run by a projector of its own on the read-model file. */
export const readModels: readonly Projection[] = [walletsProjection, artworksProjection, salesProjection];
