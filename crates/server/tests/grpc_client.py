"""A gRPC client for assay that nobody on the project wrote: grpcio (gRPC's C core).

It learns every service through server reflection alone (no .proto files, no generated
code), registers the trade workload, processes it and compares the output with the expected
documents by exact decimal value, checks an error's google.rpc.ErrorInfo, runs a stream, and
asks the health service. Run by crates/server/tests/it/grpc.rs as

    python3 grpc_client.py HOST:PORT path/to/examples/trade

Needs: pip install grpcio grpcio-reflection grpcio-health-checking googleapis-common-protos
"""

import json
import sys
from decimal import Decimal
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def exact(text):
    """JSON with every number as an exact Decimal: 2718350.0000000 == 2718350."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


class Service:
    """Callables for every method of a service, built from its reflected descriptor."""

    def __init__(self, channel, pool, name):
        self.messages = {}
        desc = pool.FindServiceByName(name)
        for m in desc.methods:
            req = message_factory.GetMessageClass(m.input_type)
            resp = message_factory.GetMessageClass(m.output_type)
            self.messages[m.name] = req
            kind = "stream_stream" if m.client_streaming else "unary_unary"
            setattr(
                self,
                m.name,
                getattr(channel, kind)(
                    f"/{name}/{m.name}",
                    request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString,
                ),
            )

    def request(self, method, **fields):
        return self.messages[method](**fields)


def error_info(err):
    """The ErrorInfo inside a failed call's grpc-status-details-bin trailer."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError(f"no ErrorInfo in {err!r}")


def main(addr, examples):
    examples = Path(examples)
    channel = grpc.insecure_channel(addr)
    grpc.channel_ready_future(channel).result(timeout=10)

    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    for name in ["assay.v1.Engine", "assay.v1.Registry", "assay.v1.Keys", "grpc.health.v1.Health"]:
        check(name in services, f"reflection lists {name}: {services}")
    pool = descriptor_pool.DescriptorPool(db)
    engine = Service(channel, pool, "assay.v1.Engine")
    registry = Service(channel, pool, "assay.v1.Registry")

    health = health_pb2_grpc.HealthStub(channel)
    for name in ["", "assay.v1.Engine", "assay.v1.Registry"]:
        r = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        check(r.status == health_pb2.HealthCheckResponse.SERVING, f"health of {name!r}")

    for name, file in [("trade-input", "input.schema.json"), ("trade-output", "output.schema.json")]:
        r = registry.PutSchema(
            registry.request("PutSchema", name=name, body=(examples / file).read_bytes()),
            timeout=10,
        )
        check(r.version == 1 and r.created, f"{name} registered: {r}")
    definition = {
        "input_schema": "trade-input",
        "transform": (examples / "transform.jq").read_text(),
        "output_schema": "trade-output",
        "output": "json",
    }
    r = registry.PutPipeline(
        registry.request("PutPipeline", name="trade", body=json.dumps(definition).encode()),
        timeout=10,
    )
    check(r.version == 1, f"pipeline registered: {r}")

    for doc, expected in [("trade.json", "expected.json"), ("trade-precision.json", "expected-precision.json")]:
        r = engine.Process(
            engine.request("Process", pipeline="trade", document=(examples / doc).read_bytes(), sequence=7),
            timeout=10,
        )
        check(r.WhichOneof("result") == "accepted", f"{doc} accepted: {r}")
        check(r.sequence == 7 and r.pipeline_version == 1, f"{doc}: {r}")
        got, want = exact(r.accepted.output), exact((examples / expected).read_bytes())
        check(got == want, f"{doc}: {r.accepted.output!r} != {want!r}")
    check(b'"sequence":12345678901234567890' in r.accepted.output, r.accepted.output)

    try:
        engine.Process(engine.request("Process", pipeline="trade", document=b"{,"), timeout=10)
        raise AssertionError("malformed JSON was accepted")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"malformed: {err}")
        info = error_info(err)
        check((info.reason, info.domain) == ("syntax", "assay"), f"malformed: {info}")

    r = engine.Validate(
        engine.request("Validate", schema="trade-input", document=b'{"price": -1}'),
        timeout=10,
    )
    check(not r.valid and any(f.instance_location == "/price" for f in r.findings), f"validate: {r}")

    trade = (examples / "trade.json").read_bytes()
    documents = [b"not json" if i % 10 == 3 else trade for i in range(100)]
    requests = (
        engine.request("ProcessStream", pipeline="trade", document=d, sequence=i)
        for i, d in enumerate(documents)
    )
    results = [(r.sequence, r.WhichOneof("result")) for r in engine.ProcessStream(requests, timeout=30)]
    want = [(i, "error" if i % 10 == 3 else "accepted") for i in range(100)]
    check(results == want, f"stream: {results}")

    print("ok: all checks passed")


if __name__ == "__main__":
    main(*sys.argv[1:])
