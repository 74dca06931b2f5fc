"""Whether this run is CI: there a real component that cannot be built or started fails the
run instead of being skipped."""

import os

IN_CI = os.environ.get("CI", "").lower() == "true"
