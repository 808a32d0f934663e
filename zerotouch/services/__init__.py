"""Use cases: import, claim, plan, rules, certificate authority, keys. Services never speak HTTP."""
