// Emits feedback with the stock OpenTelemetry JS SDK over OTLP/HTTP, as a Node or browser app
// would, for tests/integration/test_js_sdk.py.
//
//   node emit.mjs --endpoint http://127.0.0.1:4318 --protocol proto|json [--compression gzip|none]
//                 [--header name=value ...]
//
// The scenario comes as JSON on stdin, so the test that asserts the events also owns their data:
//   {"resource": {attr: value},
//    "logs":  [{"eventName", "timestamp": [s, ns], "body", "attributes", "traceId", "spanId"}],
//    "spans": [{"name", "startTime", "endTime", "attributes", "status": {"code", "message"},
//               "events": [{"name", "attributes", "time"}]}]}
// Logs go through one BatchLogRecordProcessor and are flushed once, so they travel in one export
// request (a mixed batch gets one partial_success); spans go one request each.
//
// Prints one JSON object: the export results the SDK handed its processors ({signal, code,
// error, items}, plus the HTTP status and response body of a refusal), the partial successes it
// reported (the stock exporters only log them, through `diag.warn`), what else it logged at warn
// or error, and the ids it gave each span. Exits 1 when an export failed, 2 on bad usage.

import { ROOT_CONTEXT, SpanStatusCode, TraceFlags, diag, trace } from "@opentelemetry/api";
import { OTLPLogExporter as JsonLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as ProtoLogExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { OTLPTraceExporter as JsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const EXPORTERS = {
  proto: { logs: ProtoLogExporter, traces: ProtoTraceExporter },
  json: { logs: JsonLogExporter, traces: JsonTraceExporter },
};
const PARTIAL_SUCCESS = "Received Partial Success response:";

function usage(message) {
  process.stderr.write(`emit.mjs: ${message}\n`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: {
    endpoint: { type: "string" },
    protocol: { type: "string" },
    compression: { type: "string", default: "none" },
    header: { type: "string", multiple: true, default: [] },
  },
});
if (!args.endpoint) usage("--endpoint is required (e.g. http://127.0.0.1:4318)");
const exporters = EXPORTERS[args.protocol];
if (!exporters) usage(`--protocol must be proto or json, not ${args.protocol}`);
if (!["gzip", "none"].includes(args.compression)) usage("--compression must be gzip or none");

const headers = {};
for (const header of args.header) {
  const at = header.indexOf("=");
  if (at < 1) usage(`--header takes name=value, not ${header}`);
  headers[header.slice(0, at)] = header.slice(at + 1);
}

const scenario = JSON.parse(readFileSync(0, "utf8"));

// What the exporters report besides their results: partial successes arrive as diag warnings.
const partialSuccess = [];
const warnings = [];
const warn = (message, ...rest) => {
  if (message === PARTIAL_SUCCESS) partialSuccess.push(JSON.parse(rest[0]));
  else warnings.push([message, ...rest].map(String).join(" "));
};
diag.setLogger({ error: warn, warn, info() {}, debug() {}, verbose() {} });

// The stock exporter, wrapped only to keep each export's result for the report.
const exports = [];
function recording(signal, exporter) {
  return {
    export(items, done) {
      exporter.export(items, (result) => {
        const { code, error } = result;
        const entry = { signal, code, error: error ? String(error) : null, items: items.length };
        // An OTLPExporterError carries the HTTP status and the response body.
        if (error?.code !== undefined) {
          Object.assign(entry, { status: Number(error.code), body: error.data ?? null });
        }
        exports.push(entry);
        done(result);
      });
    },
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    shutdown: () => exporter.shutdown(),
  };
}

function exporter(signal) {
  const Exporter = exporters[signal];
  const url = `${args.endpoint.replace(/\/$/, "")}/v1/${signal}`;
  return recording(signal, new Exporter({ url, compression: args.compression, headers }));
}

const resource = resourceFromAttributes(scenario.resource ?? {});
const spans = [];

if (scenario.logs?.length) {
  const processor = new BatchLogRecordProcessor({
    exporter: exporter("logs"),
    maxExportBatchSize: 512,
    scheduledDelayMillis: 60_000, // only the flush below exports: one request
  });
  const provider = new LoggerProvider({ resource, processors: [processor] });
  const logger = provider.getLogger("feedback-widget");
  for (const record of scenario.logs) {
    const { traceId, spanId, ...rest } = record;
    const context = traceId
      ? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED })
      : undefined;
    logger.emit({ ...rest, context });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

if (scenario.spans?.length) {
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new SimpleSpanProcessor(exporter("traces"))],
  });
  const tracer = provider.getTracer("llm-client");
  for (const s of scenario.spans) {
    const span = tracer.startSpan(s.name, { startTime: s.startTime, attributes: s.attributes });
    for (const event of s.events ?? []) span.addEvent(event.name, event.attributes, event.time);
    if (s.status) {
      span.setStatus({ code: SpanStatusCode[s.status.code], message: s.status.message });
    }
    span.end(s.endTime);
    const { traceId, spanId } = span.spanContext();
    spans.push({ traceId, spanId });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

const failed = exports.some((e) => e.code !== 0);
const report = { protocol: args.protocol, exports, partialSuccess, warnings, spans };
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(failed ? 1 : 0);
