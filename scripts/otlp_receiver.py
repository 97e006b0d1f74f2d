"""An OTLP/HTTP (protobuf) trace receiver for the trace tests.

POST /v1/traces  an ExportTraceServiceRequest, decoded with the official definitions; answered 200.
GET  /spans      every span received so far, as JSON: ids in lower-case hex, the resource's and the
                 span's attributes, links, kind, and the time it arrived.
The port (chosen by the system) is written to the file named by the first argument. With
`--count-only` (benchmarks) spans are decoded and counted, not kept: GET /spans answers the count.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SPANS = []
COUNT = [0]
COUNT_ONLY = "--count-only" in sys.argv[2:]
LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(attrs):
    return {a.key: value(a.value) for a in attrs}


class Handler(BaseHTTPRequestHandler):
    # Connections kept alive, as a collector keeps them: an exporter is not charged a connect per batch.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        now = time.time()
        with LOCK:
            if COUNT_ONLY:
                COUNT[0] += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                request.Clear()
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        SPANS.append({
                            "traceId": span.trace_id.hex(),
                            "spanId": span.span_id.hex(),
                            "parentSpanId": span.parent_span_id.hex(),
                            "traceState": span.trace_state,
                            "name": span.name,
                            "kind": Span.SpanKind.Name(span.kind),
                            "attributes": attributes(span.attributes),
                            "links": [{"traceId": l.trace_id.hex(), "spanId": l.span_id.hex()} for l in span.links],
                            "resource": resource,
                            "endSeconds": span.end_time_unix_nano / 1e9,
                            "receivedSeconds": now,
                        })
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self):
        with LOCK:
            text = json.dumps(COUNT[0] if COUNT_ONLY else SPANS).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
