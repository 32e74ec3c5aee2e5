import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidCommand, NotFoundError, RuleViolation } from "../errors.js";
import { scenario } from "../testing/given.js";
import { quoteSale } from "./decide.js";
import { artworkDecider } from "./decider.js";
import type { ArtworkCommand, ArtworkEvent, ArtworkState, Payout, RoyaltyShare } from "./types.js";

const { given } = scenario(artworkDecider);

const artworkId = "a-1";
const artist = "u-1";
const buyer = "u-2";
const stranger = "u-3";

const split: RoyaltyShare[] = [
  { recipientId: "r-1", basisPoints: 500 },
  { recipientId: "r-2", basisPoints: 250 },
];

/** `count` distinct recipients, 100 bps each. */
const recipients = (count: number): RoyaltyShare[] =>
  Array.from({ length: count }, (_, i) => ({ recipientId: `r-${i + 1}`, basisPoints: 100 }));

// Events
const minted = (royaltySplit: readonly RoyaltyShare[] = split): ArtworkEvent => ({
  type: "ArtworkMinted",
  artistId: artist,
  title: "Dawn",
  contentHash: "sha256:abc",
  royaltySplit,
});
const splitChanged = (royaltySplit: readonly RoyaltyShare[]): ArtworkEvent => ({
  type: "RoyaltySplitChanged",
  royaltySplit,
});
const listed = (priceCents: bigint): ArtworkEvent => ({ type: "ArtworkListed", priceCents });
const delisted: ArtworkEvent = { type: "ArtworkDelisted" };
const transferred = (fromOwnerId: string, toOwnerId: string): ArtworkEvent => ({
  type: "OwnershipTransferred",
  fromOwnerId,
  toOwnerId,
});
const burned: ArtworkEvent = { type: "ArtworkBurned" };

// Commands
const mint = (royaltySplit: readonly RoyaltyShare[] = split, artistId = artist): ArtworkCommand => ({
  type: "MintArtwork",
  artworkId,
  artistId,
  title: "Dawn",
  contentHash: "sha256:abc",
  royaltySplit,
});
const setSplit = (royaltySplit: readonly RoyaltyShare[], actorId = artist): ArtworkCommand => ({
  type: "SetRoyaltySplit",
  artworkId,
  actorId,
  royaltySplit,
});
const list = (priceCents: bigint, actorId = artist): ArtworkCommand => ({
  type: "ListForSale",
  artworkId,
  actorId,
  priceCents,
});
const delist = (actorId = artist): ArtworkCommand => ({ type: "Delist", artworkId, actorId });
const transfer = (newOwnerId: string, actorId = artist): ArtworkCommand => ({
  type: "TransferOwnership",
  artworkId,
  actorId,
  newOwnerId,
});
const burn = (actorId = artist): ArtworkCommand => ({ type: "BurnArtwork", artworkId, actorId });

/** Every command but mint, each issued by the artist who is also the owner. */
const nonMintCommands: [string, ArtworkCommand][] = [
  ["SetRoyaltySplit", setSplit(recipients(1))],
  ["ListForSale", list(1_000n)],
  ["Delist", delist()],
  ["TransferOwnership", transfer(buyer)],
  ["BurnArtwork", burn()],
];

describe("MintArtwork", () => {
  it("mints an artwork with its royalty split", () => {
    given([]).when(mint()).then([minted()]);
  });
  it("makes the artist the owner, unlisted", () => {
    given([])
      .when(mint())
      .thenState({
        status: "Active",
        artistId: artist,
        ownerId: artist,
        title: "Dawn",
        contentHash: "sha256:abc",
        royaltySplit: split,
        listing: null,
      });
  });
  it("allows an empty royalty split", () => {
    given([]).when(mint([])).then([minted([])]);
  });
  it("keeps only the two fields of each share, whatever the command object carries", () => {
    const share = { recipientId: "r-1", basisPoints: 500, $typeName: "foldline.v1.RoyaltyShare" };
    given([])
      .when(mint([share]))
      .then([minted([{ recipientId: "r-1", basisPoints: 500 }])]);
  });
  it("refuses an artwork that already exists", () => {
    given([minted()]).when(mint()).thenThrows(AlreadyExistsError, "artwork a-1 already exists");
  });
  it("refuses an artwork that was burned: its id stays taken", () => {
    given([minted(), burned]).when(mint()).thenThrows(AlreadyExistsError, "artwork a-1 already exists (burned)");
  });
  it("checks existence before the command's data", () => {
    given([minted()])
      .when(mint([{ recipientId: "r-1", basisPoints: 0 }]))
      .thenThrows(AlreadyExistsError);
  });
  it("refuses an empty artist id", () => {
    given([]).when(mint(split, "")).thenThrows(InvalidCommand, "artwork a-1 needs an artist id");
  });
});

describe("royalty split validation (on mint and on change)", () => {
  // Each case runs through both commands that carry a split.
  const through: [
    string,
    ArtworkEvent[],
    (s: readonly RoyaltyShare[]) => ArtworkCommand,
    (s: readonly RoyaltyShare[]) => ArtworkEvent,
  ][] = [
    ["MintArtwork", [], (s) => mint(s), (s) => minted(s)],
    ["SetRoyaltySplit", [minted()], (s) => setSplit(s), splitChanged],
  ];

  describe.each(through)("%s", (_name, history, command, accepted) => {
    it("allows exactly 16 recipients", () => {
      given(history).when(command(recipients(16))).then([accepted(recipients(16))]);
    });
    it("refuses 17 recipients", () => {
      given(history)
        .when(command(recipients(17)))
        .thenThrows(InvalidCommand, "royalty split has 17 recipients; at most 16 are allowed");
    });
    it("allows a total of exactly 10000 bps", () => {
      const full = [
        { recipientId: "r-1", basisPoints: 9_000 },
        { recipientId: "r-2", basisPoints: 1_000 },
      ];
      given(history).when(command(full)).then([accepted(full)]);
    });
    it("refuses a total of 10001 bps", () => {
      const over = [
        { recipientId: "r-1", basisPoints: 9_000 },
        { recipientId: "r-2", basisPoints: 1_001 },
      ];
      given(history).when(command(over)).thenThrows(InvalidCommand, "royalty split total 10001 bps exceeds 10000");
    });
    it("refuses a recipient named twice", () => {
      const twice = [
        { recipientId: "r-1", basisPoints: 100 },
        { recipientId: "r-2", basisPoints: 100 },
        { recipientId: "r-1", basisPoints: 100 },
      ];
      given(history).when(command(twice)).thenThrows(InvalidCommand, "names recipient r-1 more than once");
    });
    it("refuses a zero share", () => {
      given(history)
        .when(command([{ recipientId: "r-1", basisPoints: 0 }]))
        .thenThrows(InvalidCommand, "royalty share of r-1 is 0 bps; each share must be a positive integer");
    });
    it("refuses a negative share", () => {
      given(history)
        .when(command([{ recipientId: "r-1", basisPoints: -5 }]))
        .thenThrows(InvalidCommand, "royalty share of r-1 is -5 bps");
    });
    it("refuses a non-integer share", () => {
      given(history)
        .when(command([{ recipientId: "r-1", basisPoints: 12.5 }]))
        .thenThrows(InvalidCommand, "royalty share of r-1 is 12.5 bps");
    });
    it("refuses a NaN share", () => {
      given(history)
        .when(command([{ recipientId: "r-1", basisPoints: Number.NaN }]))
        .thenThrows(InvalidCommand, "royalty share of r-1 is NaN bps");
    });
    it("refuses an empty recipient id", () => {
      given(history)
        .when(command([{ recipientId: "", basisPoints: 100 }]))
        .thenThrows(InvalidCommand, "empty id");
    });
  });
});

describe("every command but mint", () => {
  it.each(nonMintCommands)("%s on an artwork never minted is NotFound", (_name, command) => {
    given([]).when(command).thenThrows(NotFoundError, "artwork a-1 does not exist");
  });
  it.each(nonMintCommands)("%s on a burned artwork is refused, even from its owner", (_name, command) => {
    given([minted(), burned]).when(command).thenThrows(RuleViolation, "artwork a-1 is burned");
  });
  it.each(nonMintCommands)("%s on a listed then burned artwork is refused", (_name, command) => {
    given([minted(), listed(500n), burned]).when(command).thenThrows(RuleViolation, "artwork a-1 is burned");
  });
  it("checks burned before the actor", () => {
    given([minted(), burned]).when(burn(stranger)).thenThrows(RuleViolation, "artwork a-1 is burned");
  });
});

describe("SetRoyaltySplit", () => {
  const newSplit = [{ recipientId: "r-9", basisPoints: 1_500 }];

  it("lets the artist change the split", () => {
    given([minted()]).when(setSplit(newSplit)).then([splitChanged(newSplit)]);
  });
  it("lets the artist empty the split", () => {
    given([minted()]).when(setSplit([])).then([splitChanged([])]);
  });
  it("lets the artist change it after selling the artwork", () => {
    given([minted(), transferred(artist, buyer)])
      .when(setSplit(newSplit))
      .then([splitChanged(newSplit)]);
  });
  it("refuses anyone but the artist, the current owner included", () => {
    given([minted(), transferred(artist, buyer)])
      .when(setSplit(newSplit, buyer))
      .thenThrows(RuleViolation, `only the artist (u-1) may change the royalty split of artwork a-1; u-2 is not`);
  });
  it("checks the actor before the split", () => {
    given([minted()])
      .when(setSplit(recipients(17), stranger))
      .thenThrows(RuleViolation, "only the artist");
  });
  it("is a no-op for the current split", () => {
    given([minted()])
      .when(setSplit(split.map((share) => ({ ...share }))))
      .thenNothing();
  });
  it("is a no-op for the split last changed to", () => {
    given([minted(), splitChanged(newSplit)]).when(setSplit(newSplit)).thenNothing();
  });
  it("changes a split with the same shares in another order", () => {
    const reversed = split.toReversed();
    given([minted()]).when(setSplit(reversed)).then([splitChanged(reversed)]);
  });
  it("changes a split with the same recipients and other shares", () => {
    const other = [
      { recipientId: "r-1", basisPoints: 500 },
      { recipientId: "r-2", basisPoints: 251 },
    ];
    given([minted()]).when(setSplit(other)).then([splitChanged(other)]);
  });
  it("changes a split that extends the current one", () => {
    const longer = [...split, { recipientId: "r-3", basisPoints: 1 }];
    given([minted()]).when(setSplit(longer)).then([splitChanged(longer)]);
  });
});

describe("ListForSale", () => {
  it("lets the owner list at a price", () => {
    given([minted()]).when(list(1_000n)).then([listed(1_000n)]);
  });
  it("names the wallet the proceeds go to, and lists again when only that wallet changes", () => {
    const toSavings: ArtworkCommand = { type: "ListForSale", artworkId, actorId: artist, priceCents: 1_000n, payoutWalletId: "w-savings" };
    given([minted()]).when(toSavings).then([{ type: "ArtworkListed", priceCents: 1_000n, payoutWalletId: "w-savings" }]);
    given([minted(), listed(1_000n)]).when(toSavings).then([{ type: "ArtworkListed", priceCents: 1_000n, payoutWalletId: "w-savings" }]);
    given([minted(), { type: "ArtworkListed", priceCents: 1_000n, payoutWalletId: "w-savings" }]).when(toSavings).thenNothing();
    given([minted()])
      .when({ ...toSavings, payoutWalletId: "" })
      .thenThrows(InvalidCommand, "the payout wallet of artwork a-1 must not be empty");
  });
  it("records the listing in the state", () => {
    given([minted()])
      .when(list(1_000n))
      .thenState({
        status: "Active",
        artistId: artist,
        ownerId: artist,
        title: "Dawn",
        contentHash: "sha256:abc",
        royaltySplit: split,
        listing: { priceCents: 1_000n },
      });
  });
  it("refuses anyone but the owner", () => {
    given([minted()])
      .when(list(1_000n, buyer))
      .thenThrows(RuleViolation, "only the owner (u-1) may list artwork a-1; u-2 is not");
  });
  it("refuses the artist once the artwork is sold", () => {
    given([minted(), transferred(artist, buyer)])
      .when(list(1_000n, artist))
      .thenThrows(RuleViolation, "only the owner (u-2) may list artwork a-1; u-1 is not");
  });
  it("lets the new owner list", () => {
    given([minted(), transferred(artist, buyer)]).when(list(2_000n, buyer)).then([listed(2_000n)]);
  });
  it("refuses a zero price", () => {
    given([minted()]).when(list(0n)).thenThrows(InvalidCommand, "price must be positive; got 0 cents");
  });
  it("refuses a negative price", () => {
    given([minted()]).when(list(-1n)).thenThrows(InvalidCommand, "price must be positive; got -1 cents");
  });
  it("checks the actor before the price", () => {
    given([minted()]).when(list(0n, stranger)).thenThrows(RuleViolation, "only the owner");
  });
  it("is a no-op at the listed price", () => {
    given([minted(), listed(1_000n)]).when(list(1_000n)).thenNothing();
  });
  it("relists at a new price", () => {
    given([minted(), listed(1_000n)]).when(list(1_200n)).then([listed(1_200n)]);
  });
  it("lists again after a delisting at the same price", () => {
    given([minted(), listed(1_000n), delisted]).when(list(1_000n)).then([listed(1_000n)]);
  });
});

describe("Delist", () => {
  it("lets the owner delist", () => {
    given([minted(), listed(1_000n)]).when(delist()).then([delisted]);
  });
  it("clears the listing in the state", () => {
    given([minted(), listed(1_000n)])
      .when(delist())
      .thenState({
        status: "Active",
        artistId: artist,
        ownerId: artist,
        title: "Dawn",
        contentHash: "sha256:abc",
        royaltySplit: split,
        listing: null,
      });
  });
  it("is a no-op when not listed", () => {
    given([minted()]).when(delist()).thenNothing();
  });
  it("is a no-op when already delisted", () => {
    given([minted(), listed(1_000n), delisted]).when(delist()).thenNothing();
  });
  it("refuses anyone but the owner", () => {
    given([minted(), listed(1_000n)])
      .when(delist(stranger))
      .thenThrows(RuleViolation, "only the owner (u-1) may delist artwork a-1; u-3 is not");
  });
  it("refuses a non-owner even when there is nothing to delist", () => {
    given([minted()]).when(delist(stranger)).thenThrows(RuleViolation, "only the owner");
  });
});

describe("TransferOwnership", () => {
  it("lets the owner transfer", () => {
    given([minted()]).when(transfer(buyer)).then([transferred(artist, buyer)]);
  });
  it("names the current owner, not the artist, as the one it is transferred from", () => {
    given([minted(), transferred(artist, buyer)])
      .when(transfer(stranger, buyer))
      .then([transferred(buyer, stranger)]);
  });
  it("clears the listing", () => {
    given([minted(), listed(1_000n)])
      .when(transfer(buyer))
      .thenState({
        status: "Active",
        artistId: artist,
        ownerId: buyer,
        title: "Dawn",
        contentHash: "sha256:abc",
        royaltySplit: split,
        listing: null,
      });
  });
  it("refuses anyone but the owner", () => {
    given([minted()])
      .when(transfer(stranger, buyer))
      .thenThrows(RuleViolation, "only the owner (u-1) may transfer artwork a-1; u-2 is not");
  });
  it("refuses the previous owner", () => {
    given([minted(), transferred(artist, buyer)])
      .when(transfer(stranger, artist))
      .thenThrows(RuleViolation, "only the owner (u-2) may transfer artwork a-1; u-1 is not");
  });
  it("refuses an empty new owner id", () => {
    given([minted()]).when(transfer("")).thenThrows(InvalidCommand, "transfer of artwork a-1 needs a new owner id");
  });
  it("checks the actor before the new owner id", () => {
    given([minted()]).when(transfer("", stranger)).thenThrows(RuleViolation, "only the owner");
  });
  it("is a no-op to the current owner", () => {
    given([minted()]).when(transfer(artist)).thenNothing();
  });
  it("is a no-op to the current owner after a sale", () => {
    given([minted(), transferred(artist, buyer)]).when(transfer(buyer, buyer)).thenNothing();
  });
});

describe("BurnArtwork", () => {
  it("lets the owner burn", () => {
    given([minted()]).when(burn()).then([burned]);
  });
  it("makes the artwork Burned, keeping only who made and owned it", () => {
    given([minted(), transferred(artist, buyer), listed(1_000n)])
      .when(burn(buyer))
      .thenState({ status: "Burned", artistId: artist, ownerId: buyer });
  });
  it("refuses anyone but the owner", () => {
    given([minted()])
      .when(burn(stranger))
      .thenThrows(RuleViolation, "only the owner (u-1) may burn artwork a-1; u-3 is not");
  });
  it("refuses the artist once the artwork is sold", () => {
    given([minted(), transferred(artist, buyer)]).when(burn(artist)).thenThrows(RuleViolation, "only the owner (u-2)");
  });
});

describe("SellArtwork", () => {
  const proceeds = (amountCents: bigint, recipientId = artist): Payout => ({ recipientId, amountCents, kind: "SaleProceeds" });
  const payoutsOf1001: Payout[] = [
    { recipientId: "r-1", amountCents: 50n, kind: "Royalty" },
    { recipientId: "r-2", amountCents: 25n, kind: "Royalty" },
    proceeds(926n),
  ];
  const sell = (priceCents: bigint, buyerId = buyer, payouts: readonly Payout[] = [proceeds(priceCents)]): ArtworkCommand => ({
    type: "SellArtwork",
    artworkId,
    purchaseId: "p-1",
    buyerId,
    priceCents,
    payouts,
  });

  it("hands a listed artwork to the buyer, paying royalties (rounded down) and the seller the rest", () => {
    given([minted(), listed(1_001n)])
      .when(sell(1_001n, buyer, payoutsOf1001))
      .then([
        {
          type: "ArtworkSold",
          purchaseId: "p-1",
          sellerId: artist,
          buyerId: buyer,
          priceCents: 1_001n,
          payouts: payoutsOf1001,
        },
        transferred(artist, buyer),
      ]);
  });

  it("refuses a sale whose payouts are not those the purchase made room for", () => {
    given([minted(), listed(1_001n)])
      .when(sell(1_001n, buyer, [proceeds(1_001n)]))
      .thenThrows(
        RuleViolation,
        "artwork a-1 would pay 50 to r-1 (royalty), 25 to r-2 (royalty), 926 to u-1 (proceeds); " +
          "purchase p-1 made room for 1001 to u-1 (proceeds)",
      );
    // The split changed after the purchase quoted the sale.
    given([minted(), listed(1_001n), splitChanged([{ recipientId: "r-1", basisPoints: 600 }])])
      .when(sell(1_001n, buyer, payoutsOf1001))
      .thenThrows(RuleViolation, "artwork a-1 would pay 60 to r-1 (royalty), 941 to u-1 (proceeds); purchase p-1 made room for");
    // Sold and listed again at the same price by its new owner.
    given([minted([]), listed(10n), transferred(artist, stranger), listed(10n)])
      .when(sell(10n))
      .thenThrows(RuleViolation, "artwork a-1 would pay 10 to u-3 (proceeds); purchase p-1 made room for 10 to u-1 (proceeds)");
  });

  it("leaves the artwork owned by the buyer and unlisted", () => {
    given([minted([]), listed(10n)])
      .when(sell(10n))
      .thenState({
        status: "Active",
        artistId: artist,
        ownerId: buyer,
        title: "Dawn",
        contentHash: "sha256:abc",
        royaltySplit: [],
        listing: null,
      });
  });

  it.each<[string, ArtworkEvent[], ArtworkCommand, string]>([
    ["unlisted", [minted(), listed(10n), delisted], sell(10n), "artwork a-1 is not listed for sale"],
    ["sold to someone else", [minted(), listed(10n), transferred(artist, stranger)], sell(10n), "not listed for sale"],
    ["repriced", [minted(), listed(10n), listed(12n)], sell(10n), "listed at 12 cents; purchase p-1 offered 10"],
    ["bought by its owner", [minted(), listed(10n)], sell(10n, artist), `${artist} already owns artwork a-1`],
    ["burned", [minted(), listed(10n), burned], sell(10n), "artwork a-1 is burned"],
  ])("refuses a sale when the artwork is %s", (_, history, command, message) => {
    given(history).when(command).thenThrows(RuleViolation, message);
  });

  it("refuses a sale of an artwork never minted", () => {
    given([]).when(sell(10n)).thenThrows(NotFoundError, "artwork a-1 does not exist");
  });
});

describe("quoteSale", () => {
  const request = { artworkId, purchaseId: "p-1", buyerId: buyer, priceCents: 1_001n };
  const fold = (events: readonly ArtworkEvent[]): ArtworkState => events.reduce((state, event) => artworkDecider.evolve(state, event), artworkDecider.initialState);

  it("answers the seller and the payouts a sale would make now", () => {
    expect(quoteSale(request, fold([minted(), listed(1_001n)]))).toStrictEqual({
      sellerId: artist,
      payouts: [
        { recipientId: "r-1", amountCents: 50n, kind: "Royalty" },
        { recipientId: "r-2", amountCents: 25n, kind: "Royalty" },
        { recipientId: artist, amountCents: 926n, kind: "SaleProceeds" },
      ],
    });
  });

  it("pays the proceeds into the listing's payout wallet", () => {
    const listing: ArtworkEvent = { type: "ArtworkListed", priceCents: 1_001n, payoutWalletId: "w-savings" };
    expect(quoteSale(request, fold([minted(), listing])).payouts.at(-1)).toStrictEqual({
      recipientId: "w-savings",
      amountCents: 926n,
      kind: "SaleProceeds",
    });
  });

  it("throws what the sale would be refused with", () => {
    expect(() => quoteSale(request, fold([]))).toThrow(new NotFoundError("artwork a-1 does not exist"));
    expect(() => quoteSale(request, fold([minted(), listed(1_001n), burned]))).toThrow(new RuleViolation("artwork a-1 is burned"));
    expect(() => quoteSale(request, fold([minted(), listed(1_000n)]))).toThrow(
      new RuleViolation("artwork a-1 is listed at 1000 cents; purchase p-1 offered 1001"),
    );
    expect(() => quoteSale({ ...request, buyerId: artist }, fold([minted(), listed(1_001n)]))).toThrow(RuleViolation);
  });
});
