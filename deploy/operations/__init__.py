"""Operators' tools for the central platform: consumer lag with Burrow-style statuses,
freshness of the reconciled store, the agreed metric names and the alerting rules' basis."""
