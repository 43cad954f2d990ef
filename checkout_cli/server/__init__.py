"""``checkout serve``: the registry's endpoints over HTTP, on the local engine."""
