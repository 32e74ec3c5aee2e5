import { describe, expect, it } from "vitest";
import { evolve, initialState } from "./evolve.js";
import type { ArtworkEvent, ArtworkState } from "./types.js";

const minted: ArtworkEvent = {
  type: "ArtworkMinted",
  artistId: "u-1",
  title: "Dawn",
  contentHash: "sha256:abc",
  royaltySplit: [{ recipientId: "r-1", basisPoints: 500 }],
};

const fold = (events: readonly ArtworkEvent[]): ArtworkState =>
  events.reduce<ArtworkState>((state, event) => evolve(state, event), initialState);

describe("evolve", () => {
  it("starts Empty", () => {
    expect(initialState).toStrictEqual({ status: "Empty" });
  });

  it("folds a life into the expected state", () => {
    expect(
      fold([
        minted,
        { type: "ArtworkListed", priceCents: 1_000n },
        { type: "RoyaltySplitChanged", royaltySplit: [{ recipientId: "r-2", basisPoints: 700 }] },
        { type: "ArtworkListed", priceCents: 1_500n },
        { type: "OwnershipTransferred", fromOwnerId: "u-1", toOwnerId: "u-2" },
        { type: "ArtworkListed", priceCents: 2_000n },
      ]),
    ).toStrictEqual({
      status: "Active",
      artistId: "u-1",
      ownerId: "u-2",
      title: "Dawn",
      contentHash: "sha256:abc",
      royaltySplit: [{ recipientId: "r-2", basisPoints: 700 }],
      listing: { priceCents: 2_000n },
    });
  });

  it("folds a burn into the terminal state", () => {
    expect(fold([minted, { type: "ArtworkListed", priceCents: 1_000n }, { type: "ArtworkBurned" }])).toStrictEqual({
      status: "Burned",
      artistId: "u-1",
      ownerId: "u-1",
    });
  });

  it("ignores events that do not fit the state instead of throwing", () => {
    expect(fold([{ type: "ArtworkListed", priceCents: 1n }])).toStrictEqual({ status: "Empty" });
    const active = fold([minted]);
    expect(evolve(active, { ...minted, artistId: "u-9" })).toBe(active);
    const burned = fold([minted, { type: "ArtworkBurned" }]);
    expect(evolve(burned, { type: "OwnershipTransferred", fromOwnerId: "u-1", toOwnerId: "u-2" })).toBe(burned);
  });

  it("keeps only the two fields of each share in the state", () => {
    const decoded = { ...minted, royaltySplit: [{ recipientId: "r-1", basisPoints: 500, $typeName: "x" }] };
    const state = fold([decoded]);
    expect(state.status === "Active" && state.royaltySplit).toStrictEqual([{ recipientId: "r-1", basisPoints: 500 }]);
  });
});
