"""The scale profile (`make run-scale`, `PROFILE=scale python -m bot run`): PostgreSQL as case
database and Rasa tracker store, Redis, N Rasa servers, K action servers, M hubs and HAProxy
in front of the hubs (and, on the loopback, of the action servers) — on one machine, but
wired exactly as it would be across several (every process finds the others only through
URLs in its environment; nothing is shared in memory).

Modules: ``layout`` (who listens where, from the environment), ``endpoints`` (Rasa's endpoints
file with the Redis lock store), ``haproxy`` (the balancer's config), ``prepare`` (database,
tracker table, files) and ``stack`` (the supervised processes).
"""
