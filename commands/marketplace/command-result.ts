import { create } from "@bufbuild/protobuf";
import { CommandResultSchema, type CommandResult } from "../../gen/foldline/marketplace/v1/command_pb.js";
import type { CommandOutcome } from "../command-pipeline.js";

/** The `CommandResult` every accepted command answers. */
export function commandResult(outcome: CommandOutcome<unknown>): CommandResult {
  return create(CommandResultSchema, {
    aggregateId: outcome.aggregateId,
    version: BigInt(outcome.version),
    position: BigInt(outcome.position),
  });
}
