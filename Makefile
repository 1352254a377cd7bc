# The front door: `make run` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POSTGRES_URL ?= postgresql://root@127.0.0.1:5432/test

.PHONY: help install run test test-sqlite test-postgres lint frontend-check messages nginx bench-tasks bench-canvas bench-export bench-memory bench-engine bench-preannotate bench-serving chromium podman image-base image image-test clean

help:
	@echo "make run            set up, migrate, create the owner and the demo, serve on :8080"
	@echo "make test           set up and run the whole suite (SQLite, then PostgreSQL if reachable)"
	@echo "make lint           ruff, mypy, makemigrations --check"
	@echo "make frontend-check rebuild the canvas bundle (Vitest first) and fail if it differs"
	@echo "make messages       refresh the translation catalogs from the source"
	@echo "make bench-tasks    import and task-list benchmark (100k and 1M tasks)"
	@echo "make bench-canvas   canvas pan/zoom fps and next-task latency in headless Chromium"
	@echo "make bench-export   export MB/s beside plain zipfile, its peak memory, Label Studio JSON beside plain SQL (1k, 10k)"
	@echo "make bench-memory   PSS of every server process (import 100k, list, 8-client saves, export 10k)"
	@echo "make bench-engine   detection engine images/s end to end beside raw session.run (YOLOv8n-sized graph)"
	@echo "make bench-preannotate  a pre-annotation job's tasks/s beside the engine's images/s (demo model, 1000 tasks)"
	@echo "make bench-serving  the detection service: images/s beside the engine, noisy neighbour, hot swap, metering audit"
	@echo "make image          build the container image (base from Debian by debootstrap, then deploy/Dockerfile) with podman"
	@echo "make image-test     build it, run web, worker and inference from it on this machine's services, check them"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/defectlab migrate
	$(BIN)/defectlab createadmin
	$(BIN)/defectlab demo
	$(BIN)/defectlab serve

test: test-sqlite test-postgres

# pytest exits 5 when it collected nothing; that is a failure here, never a pass.
test-sqlite: install chromium nginx
	DEFECTLAB_DATABASE_URL= $(BIN)/pytest -q -p no:cacheprovider

test-postgres: install chromium nginx
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || [ -n "$$CI" ]; then \
		DEFECTLAB_DATABASE_URL=$(POSTGRES_URL) $(BIN)/pytest -q -p no:cacheprovider; \
	else \
		echo "SKIPPED the PostgreSQL run: nothing answers on 127.0.0.1:5432 (CI always runs it)."; \
	fi

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	DEFECTLAB_DATABASE_URL= $(BIN)/defectlab manage makemigrations --check --dry-run

messages: install
	cd src/defectlab && ../../$(BIN)/defectlab manage makemessages -l zh_Hans --no-obsolete --no-wrap
	cd src/defectlab && ../../$(BIN)/defectlab manage compilemessages

# The canvas bundle is committed (pip needs no Node); CI rebuilds it and fails on any difference.
frontend-check:
	cd frontend && npm ci --no-audit --no-fund && npm test && npm run build
	git diff --exit-code -- src/defectlab/web/static/defectlab/canvas.js src/defectlab/web/static/defectlab/canvas.css

bench-tasks: install
	$(BIN)/python bench/tasks.py

# Debian's Chromium: Playwright's own browser download does not work offline.
# Debian's Chromium, and a CJK font so the Chinese pages render (and screenshot) as text.
chromium:
	@(command -v chromium >/dev/null && fc-list | grep -qi wqy) || \
		(apt-get update -q && apt-get install -y -q chromium fonts-wqy-microhei)

# Debian's nginx: the tests run `nginx -t` on the compose stack's proxy configuration.
nginx:
	@command -v nginx >/dev/null || (apt-get update -q && apt-get install -y -q nginx-light)

bench-canvas: install chromium
	$(BIN)/python bench/canvas.py

bench-export: install
	$(BIN)/python bench/export.py

bench-memory: install
	$(BIN)/python bench/memory.py

bench-engine: install
	$(BIN)/python bench/engine.py

bench-preannotate: install
	$(BIN)/python bench/preannotate.py

bench-serving: install
	$(BIN)/python bench/serving.py

# The container image, built and run with Debian's podman (no Docker engine, no registry):
# the base from Debian's packages (deploy/base.sh), then deploy/Dockerfile. vfs storage,
# cgroupfs and runc: what works in a machine without systemd; explicit ulimits: podman's
# defaults ask for more open files than the hard limit here.
PODMAN := podman --runtime runc --cgroup-manager cgroupfs --storage-driver vfs
IMAGE ?= localhost/defectlab:latest
BASE_IMAGE ?= localhost/defectlab-base:bookworm
NOFILE := $(shell n=$$(ulimit -Hn); if [ "$$n" = unlimited ] || [ "$$n" -gt 65536 ]; then n=65536; fi; echo $$n)
ULIMITS := --ulimit nofile=$(NOFILE):$(NOFILE) --ulimit nproc=4096:4096
# pip in the build trusts what this machine trusts (a network that re-signs TLS has its CA
# there); a build secret, so it is in no layer of the image.
BUILD_CA ?= $(or $(PIP_CERT),/etc/ssl/certs/ca-certificates.crt)
, := ,

podman:
	@(command -v podman && command -v runc && command -v debootstrap) >/dev/null || \
		(apt-get update -q && apt-get install -y -q podman runc debootstrap)

image-base: podman
	BASE_IMAGE=$(BASE_IMAGE) PODMAN="$(PODMAN)" deploy/base.sh

# The build stage is tagged too ($(IMAGE)-build), so pruning what no tag leads to (vfs keeps a
# whole copy per step: gigabytes a build) keeps its cached dependencies layer.
BUILD = $(PODMAN) build --network host --format docker $(ULIMITS) --build-arg BASE=$(BASE_IMAGE) \
	$(if $(wildcard $(BUILD_CA)),--secret id=ca$(,)src=$(BUILD_CA)) -f deploy/Dockerfile

image: image-base
	$(BUILD) --target build -t $(IMAGE)-build .
	$(BUILD) -t $(IMAGE) .
	$(PODMAN) image prune --force > /dev/null
	@$(PODMAN) image inspect --format '{{.Size}}' $(IMAGE) | awk '{printf "$(IMAGE): %.0f MB\n", $$1 / 1e6}'

image-test: install image
	PODMAN="$(PODMAN)" $(BIN)/python scripts/image_test.py --image $(IMAGE)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
