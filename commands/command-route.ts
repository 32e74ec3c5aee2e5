import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { AggregateType } from "./aggregate-type.js";
import type { CommandOutcome, CommandPipeline } from "./command-pipeline.js";
import { requireMetadata, type CommandMetadataFields, type CommandMetadataMessage } from "./request-fields.js";

/** A request message of a command RPC: it carries the command metadata in a field named `metadata`. */
export type CommandRequestShape = { readonly metadata?: CommandMetadataMessage | undefined };

/**
 * How one command RPC maps onto the pipeline: the request's schema (its bytes identify the request for
 * idempotency), the aggregate it addresses, how to read the command out of the request and how to answer.
 */
export interface CommandRoute<Req extends DescMessage, Res, C, E, S> {
  readonly requestSchema: Req;
  readonly type: AggregateType<C, E, S>;
  /** Validates the request's own fields; throws InvalidRequest naming the field. */
  parse(request: MessageShape<Req>, metadata: CommandMetadataFields): { readonly aggregateId: string; readonly command: C };
  respond(outcome: CommandOutcome<E>): Res;
}

/** Validates `request`, runs it through `pipeline` and answers; throws what the pipeline throws. */
export async function executeRoute<Req extends DescMessage, Res, C, E, S>(
  pipeline: CommandPipeline,
  route: CommandRoute<Req, Res, C, E, S>,
  request: MessageShape<Req> & CommandRequestShape,
): Promise<Res> {
  const metadata = requireMetadata(request.metadata);
  const { aggregateId, command } = route.parse(request, metadata);
  const outcome = await pipeline.execute(route.type, {
    ...metadata,
    aggregateId,
    command,
    requestType: route.requestSchema.typeName,
    request: toBinary(route.requestSchema, request),
  });
  return route.respond(outcome);
}
