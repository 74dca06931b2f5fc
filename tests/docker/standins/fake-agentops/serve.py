"""Serve the fake AgentOps receiver on 0.0.0.0:4318 (JWT secret from FAKE_AGENTOPS_SECRET), and
`GET /filed`: one JSON line per filed span (project, trace id, attributes) for the tests."""

import json
import os

from tests.support import fake_agentops


class Handler(fake_agentops.ReceiverHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server names it
        rows = [
            {
                "project_id": f.project_id,
                "trace_id": f.span.trace_id,
                "attributes": f.span.attributes,
            }
            for f in self.server.spans()
        ]
        self._answer(200, "\n".join(json.dumps(r) for r in rows).encode())


server = fake_agentops.FakeAgentOps(os.environ["FAKE_AGENTOPS_SECRET"], ("0.0.0.0", 4318), Handler)
server.serve_forever()
