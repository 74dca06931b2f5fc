"""Serve the fake AgentOps receiver on 0.0.0.0:4318 (JWT secret from FAKE_AGENTOPS_SECRET), and
`GET /filed`: one JSON line per filed span (project, trace id, attributes) for the tests."""

import json
import os

from scripts.native_stack.http_double import Reply, Request
from tests.doubles.fake_agentops import FakeAgentOps


class StandIn(FakeAgentOps):
    def _answer(self, req: Request) -> Reply:
        if req.method != "GET":
            return super()._answer(req)
        rows = [
            {
                "project_id": f.project_id,
                "trace_id": f.span.trace_id,
                "attributes": f.span.attributes,
            }
            for f in self.spans()
        ]
        return Reply(body="\n".join(json.dumps(r) for r in rows).encode())


StandIn(os.environ["FAKE_AGENTOPS_SECRET"], "0.0.0.0", 4318).serve_forever()
