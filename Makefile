# celery-fleet: the two commands of the README are `make demo` and `make test`.
# Everything else here is a step of those two, runnable alone.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CELERY_FLEET_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/celery-fleet
export CELERY_FLEET_WHEELHOUSE ?= $(CELERY_FLEET_CACHE)/wheelhouse
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
INVENTORIES := $(wildcard inventories/*/hosts.yml)

.PHONY: help test venv sandbox-vault lint unit promtool syntax images harness molecule demo demo-destroy bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The checks and the harness share the 2 cores first (-j2; the Docker engine and the images, which
# need no venv, start beside the venv; on a clean machine the images build while lint, syntax and the
# unit tests run: they need neither Docker nor the images), and output stays grouped per target.
# Molecule starts only once all of them passed. Four scenarios at once (scripts/run-scenarios.sh
# JOBS): on 2 cores a lane often waits (a failover, a stream, a drain, a beat period) while the
# others use the CPU. Two lanes -> three: 2460 -> 1890 s (2026-12-03). Three -> four, the same commit
# on an idle 2-core machine (2026-12-06, README): Molecule 974 -> 799 s, the CPU idle 31 -> 17 % of
# the run; on a slower machine whose cores three lanes already kept busy, four were no worse (1700 ->
# 1668 s). `make test JOBS=1`: one after another.
test: ## The whole suite: lint, unit tests, syntax checks, every Molecule scenario
	$(MAKE) --no-print-directory -j2 --output-sync=target harness lint syntax unit
	$(MAKE) --no-print-directory molecule JOBS=$(JOBS)
test: JOBS ?= 4

venv: $(BIN)/.installed ## Create the controller virtualenv from requirements/controller.txt

# pip byte-compiles what it installs on one core, ~38 s of the ~56 here, three quarters of it the
# ~15,000 files of the collections the `ansible` package bundles, of which the project loads a few.
# So: installed without it, then compiled on every core, all but the collections it does not use
# (requirements.yml's, and community.crypto for the scenarios' throwaway CA); those compile as they
# are imported, as any file without its .pyc.
COMPILED_COLLECTIONS := community/(docker|general|crypto)|ansible/posix
$(BIN)/.installed: requirements/controller.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -r requirements/controller.txt
	$(BIN)/python -m compileall -q -j0 -x 'ansible_collections/(?!($(COMPILED_COLLECTIONS))/)' $(VENV)/lib >/dev/null
	@touch $@

# The sandbox's vault password and vaults are made on each checkout, never committed (so no password in
# git opens a vault): the fleet and sentinel scenarios, the validation tests, the demo and the
# benchmarks read them. Nothing that exists is replaced.
sandbox-vault: venv ## The sandbox's random vault password and vaults (playbooks/sandbox-vault.yml; kept once made)
	@out=$$(ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False \
	  $(BIN)/ansible-playbook playbooks/sandbox-vault.yml 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "sandbox-vault: $$(grep -o 'changed=[0-9]*' <<<"$$out") (inventories/sandbox/vault-password.txt and its vaults)"

# ansible-lint runs `ansible-playbook --syntax-check` on each playbook and role (~55, ~1 CPU-s each
# in a new interpreter): through the harness's client (molecule/resources/kept_playbook.py) they are
# forked from a server that imported Ansible once, as the unit stage's and the scenarios' runs are.
lint: venv ## yamllint, ansible-lint (production profile), ruff, secret scan, README variable tables, actionlint
	$(BIN)/yamllint --strict .
	PATH=$(CURDIR)/molecule/resources/bin:$(abspath $(BIN)):$$PATH $(BIN)/ansible-lint --offline
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/scan-secrets.py
	$(BIN)/python scripts/argspec-table.py --check roles/*/
	scripts/lint-workflows.sh

# In up to UNIT_JOBS processes (pytest-xdist): the controller-side plays are most of the time.
UNIT_JOBS ?= 2
unit: venv promtool sandbox-vault ## Python unit tests (plugins, validation, argument builder, alert rules) and controller-side plays
	$(BIN)/pytest -q --numprocesses=$(UNIT_JOBS) tests/unit tests/playbooks

# Part of `unit`, not of `harness`: the alert-rule tests need it, CI's static job runs `unit` without the
# harness, and it needs no Docker (apt-get download + dpkg-deb -x as this user). Not obtained (offline),
# those tests skip, except under CI where they fail.
promtool: ## Debian's promtool (bookworm, trixie) into the cache, for the alert-rule tests
	scripts/ensure-promtool.sh || echo "promtool: not obtained; the promtool tests of tests/unit/test_alert_rules.py skip (fail under CI)"

syntax: venv sandbox-vault ## ansible-playbook --syntax-check site.yml against every inventory
	@for inv in $(dir $(INVENTORIES)); do \
	  echo "syntax-check site.yml -i $$inv"; \
	  $(BIN)/ansible-playbook --syntax-check site.yml -i $$inv $(VAULT_ARGS) >/dev/null; \
	done

harness: venv images ## Docker engine, base images and wheelhouse (each reused when already up to date)
	PIP=$(BIN)/pip scripts/build-wheelhouse.sh

images: ## Docker engine and base images (no venv needed: with -j2 they start beside it)
	scripts/ensure-docker.sh
	scripts/build-images.sh

molecule: venv harness sandbox-vault ## Every Molecule scenario (or S="redis workers" for some; JOBS=4: four at once), with a summary line
	PATH=$(abspath $(BIN)):$$PATH $(if $(JOBS),JOBS=$(JOBS)) scripts/run-scenarios.sh $(S)

demo: venv harness sandbox-vault ## Bring up the sandbox fleet in containers and run the example workload (SENTINEL=1: Sentinel broker + switchover)
# SENTINEL=1 (environment or `make demo SENTINEL=1`: make passes both to scripts/demo.sh): the broker
# as three data nodes with a Sentinel each (inventories/sandbox/sentinel.cfg), and a planned switchover.
	scripts/demo.sh up

demo-destroy: ## Tear the sandbox fleet down
	scripts/demo.sh down

bench: venv harness sandbox-vault ## Benchmarks of bench/ (not part of test): QUICK=1 reduced, ONLY="chord broker"
	$(BIN)/pip install --quiet -r bench/requirements.txt
	@# Benchmark 7's stock Molecule side (the docker driver's create) copies its build context with rsync.
	@command -v rsync >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null; } \
	  || echo "bench: rsync is missing: benchmark 7 (suite) will report its stock side as failed"
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))

clean: ## Remove the virtualenv and local caches (images and wheelhouse stay cached)
	rm -rf $(VENV) .cache
