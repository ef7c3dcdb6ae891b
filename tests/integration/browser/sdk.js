// The README's OTel JS web SDK example, bundled for the page by esbuild (test_browser.py):
// window.sdkThumbsDown(sessionId, comment) resolves to what the exporter handed the SDK.
import { diag, DiagLogLevel } from "@opentelemetry/api";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";

const PARAMS = new URLSearchParams(location.hash.slice(1));
const RECEIVER = PARAMS.get("receiver");
const TOKEN = PARAMS.get("token");

// The SDK reports a partial success (and a failed export) only through its diagnostic logger.
const logged = [];
const keep = (level) => (...args) => logged.push(`${level}: ${args.map(String).join(" ")}`);
diag.setLogger(
  { error: keep("error"), warn: keep("warn"), info() {}, debug() {}, verbose() {} },
  DiagLogLevel.WARN,
);

export async function thumbsDown(sessionId, comment, token) {
  const exporter = new OTLPLogExporter({
    url: `${RECEIVER}/v1/logs`,
    headers: { authorization: `Bearer ${token}` },  // headers: fetch, not sendBeacon
  });
  const results = [];
  const send = exporter.export.bind(exporter);
  exporter.export = (logs, done) =>
    send(logs, (result) => { results.push({ code: result.code, error: String(result.error ?? "") }); done(result); });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "shop-web" }),  // else "unknown_service"
    processors: [new BatchLogRecordProcessor({ exporter })],
  });
  provider.getLogger("feedback-widget").emit({
    eventName: "feedback.user_feedback",
    body: comment,
    attributes: { "session.id": sessionId, "feedback.thumbs": "down" },
  });
  await provider.forceFlush();
  return { results, logged };
}

window.sdkThumbsDown = (sessionId, comment) => thumbsDown(sessionId, comment, TOKEN);
