# The two commands: `make run` and `make test`. Both bootstrap whatever is missing first.
# `make security`: the attack and fault set of issue 15 against the started processes, as a table
# `make run-scale` (or PROFILE=scale make run): PostgreSQL + Redis + N Rasa + M hubs behind HAProxy
# `make bench-load`: simulated customers against the default and the scale profile
.PHONY: security run run-scale test train bench bench-dialogues bench-nlu bench-faq bench-load bench-dashboard lint bootstrap lock clean

PY := .venv/bin/python

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	@if [ "$(PROFILE)" = scale ]; then scripts/ensure_haproxy.sh; fi
	@$(PY) -m bot run

run-scale: bootstrap
	@scripts/ensure_haproxy.sh
	@PROFILE=scale $(PY) -m bot run

test: bootstrap
	@scripts/ensure_chromium.sh
	@scripts/ensure_haproxy.sh || echo "HAProxy unavailable: the scale-profile tests will say so" >&2
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite did not load" >&2; fi; \
	  exit $$rc

security: bootstrap
	@scripts/ensure_chromium.sh
	@scripts/ensure_haproxy.sh || echo "HAProxy unavailable: the scale-profile tests will say so" >&2
	@$(PY) -m pytest -m security --security-report -q $(PYTEST_ARGS)

train: bootstrap
	@$(PY) -m bot train

bench: bootstrap
	@$(PY) -m bench.turn_latency

bench-dialogues: bootstrap
	@$(PY) -m bench.dialogues

bench-nlu: bootstrap
	@$(PY) -m bench.nlu_eval

bench-faq: bootstrap
	@$(PY) -m bench.faq_eval

bench-load: bootstrap
	@case "$${BENCH_LOAD_PROFILES:-default,scale}" in *scale*) scripts/ensure_haproxy.sh;; esac
	@$(PY) -m bench.load

# KPI dashboard server time with 100 000 conversations (BENCH_DASHBOARD_N): SQLite, and
# PostgreSQL when one answers on 127.0.0.1:5432 (or BENCH_POSTGRES_URL)
bench-dashboard: bootstrap
	@$(PY) -m bench.dashboard

lint: bootstrap
	@$(PY) -m ruff check bot actions tests bench scripts alembic nlu_components

# Re-resolve the lock from requirements.in in one pip run (needs network).
lock:
	rm -rf /tmp/postventa-lock && python3.10 -m venv /tmp/postventa-lock
	/tmp/postventa-lock/bin/pip install -r requirements.in
	(echo "# Pinned, resolved together from requirements.in (make lock). Python 3.10."; \
	  /tmp/postventa-lock/bin/pip freeze) > requirements.lock

clean:
	rm -rf var models/*.tar.gz models/*.fingerprint
