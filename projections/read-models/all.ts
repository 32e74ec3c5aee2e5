import type { Projection } from "../projector.js";
import { artworksProjection } from "./artworks.js";
import { salesProjection } from "./sales.js";
import { walletsProjection } from "./wallets.js";

/** Every read model of the read-model file, run together by one projector group (`createProjectorGroup`). */
export const readModels: readonly Projection[] = [walletsProjection, artworksProjection, salesProjection];
