// Provides the nats-server binary once, before any test file runs, so that a missing server is one clear
// failure (saying what to install) instead of one per file.
import { natsServerBinary } from "../streams/nats-server.js";

export default function setup(): void {
  natsServerBinary();
}
