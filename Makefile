# The two commands: `make run` and `make test`. Both bootstrap whatever is missing first.
# `make security`: the attack and fault set of issue 15 against the started processes, as a table
.PHONY: security run test train bench bench-dialogues bench-nlu bench-faq lint bootstrap lock clean

PY := .venv/bin/python

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	@$(PY) -m bot run

test: bootstrap
	@scripts/ensure_chromium.sh
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite did not load" >&2; fi; \
	  exit $$rc

security: bootstrap
	@scripts/ensure_chromium.sh
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
