# Sukverse: `make run` starts the platform, `make test` proves it. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export SUKVERSE_CACHE ?= $(HOME)/.cache/sukverse
UV_VERSION := 0.13.8
UV := $(SUKVERSE_CACHE)/uv-$(UV_VERSION)/bin/uv
export UV_CACHE_DIR ?= $(SUKVERSE_CACHE)/uv-cache
export UV_PYTHON_DOWNLOADS := never
RUN := $(UV) run --frozen

.PHONY: help run test lint format bench sync infra kind-up kind-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv $(UV_VERSION) into $(dir $(UV))"
	python3 -m venv $(SUKVERSE_CACHE)/uv-$(UV_VERSION)
	$(SUKVERSE_CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

# Compiled ahead, as the image is: a process that compiles its imports first starts in
# twice the time (benchmarks/RESULTS.md, start-up).
sync: $(UV) ## install the locked environment into .venv
	$(UV) sync --frozen --all-packages --compile-bytecode
	$(RUN) python -m compileall -q services/*/src operator/src

run: sync ## start every service in one process (embedded mode, SQLite, in-process bus)
	$(RUN) sukverse up

lint: sync ## ruff (lint and format check), mypy, the import contracts, hadolint, shellcheck
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy services/*/src operator/src benchmarks observability
	$(RUN) lint-imports
	$(RUN) hadolint Dockerfile
	$(RUN) shellcheck --external-sources hack/*.sh .ci/run

format: sync ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

infra: ## install the real servers the tests run against (see hack/README.md)
	bash hack/postgres.sh install
	bash hack/kafka.sh install
	bash hack/kube.sh install
	bash hack/crds.sh install
	bash hack/prometheus.sh install
	bash hack/jaeger.sh install
	bash hack/image.sh install
	bash hack/kind.sh install

test: lint infra ## lint, install the real servers, then run every test tier
	$(RUN) pytest

bench: sync ## run the benchmarks and rewrite benchmarks/RESULTS.md and docs/reliability.md
	$(RUN) python -m benchmarks
	$(RUN) python -m benchmarks.reliability

kind-up: ## the platform on a local kind cluster (needs Docker, kind, kubectl, helm; see README)
	bash hack/kind-up.sh up

kind-down: ## delete the kind cluster of kind-up
	bash hack/kind-up.sh down
