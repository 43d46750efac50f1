// A proxy-wasm filter written with the AssemblyScript SDK
// (@solo-io/proxy-runtime), for the fidelity corpus (tests/data/fidelity-as):
// it logs its callbacks as `<name> cb <callback> ...` (the name is the
// plugin configuration) and does what the request's `x-fid-op` header asks:
// `reply` answers 403 locally with header `x-fid-a: 1` and a body; anything
// else adds request header `x-as: <name>` and response header `x-as-seen: 1`.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  HeaderPair,
  Headers,
  LogLevelValues,
  log,
  send_local_response,
  stream_context,
} from "@solo-io/proxy-runtime";

class FidelityRoot extends RootContext {
  name: string = "";

  onConfigure(configuration_size: u32): bool {
    // The SDK's own onConfigure reads the plugin configuration.
    super.onConfigure(configuration_size);
    this.name = this.getConfiguration();
    log(LogLevelValues.info, this.name + " cb on_configure");
    return true;
  }

  createContext(context_id: u32): Context {
    return new FidelityStream(context_id, this);
  }
}

class FidelityStream extends Context {
  name: string;

  constructor(context_id: u32, root: FidelityRoot) {
    super(context_id, root);
    this.name = root.name;
  }

  say(message: string): void {
    log(LogLevelValues.info, this.name + " " + message);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.say("cb on_request_headers eos=" + (end_of_stream ? "true" : "false"));
    const op = stream_context.headers.request.get("x-fid-op");
    if (op == "reply") {
      const headers: Headers = [];
      headers.push(new HeaderPair(String.UTF8.encode("x-fid-a"), String.UTF8.encode("1")));
      send_local_response(403, "as_reply", String.UTF8.encode("denied by as"), headers, GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-as", this.name);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const status = stream_context.headers.response.get(":status");
    this.say("cb on_response_headers eos=" + (end_of_stream ? "true" : "false") + " status=" + status);
    stream_context.headers.response.add("x-as-seen", "1");
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    this.say("cb on_log");
  }

  onDone(): bool {
    this.say("cb on_done");
    return true;
  }
}

registerRootContext((context_id: u32) => {
  return new FidelityRoot(context_id);
}, "fidelity");
