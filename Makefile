# reprobook: `make book` builds the HTML book, `make test` runs every test. Both set up .venv.
# Stage timings go to stdout and to _build/times-<target>.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROFILE ?= $(or $(REPROBOOK_PROFILE),book)
STAGE := bash .ci/stage
SMOKE := _smoke

.PHONY: book test lab venv lint clean
.DELETE_ON_ERROR:

venv: $(INSTALLED)

# Re-installs only when the dependency list or the pins change.
$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[book,test,compression]"
	@# A git filter strips outputs when a notebook is staged, so a chapter run and saved in JupyterLab is
	@# committed output-free (nbstripout; the working copy keeps its outputs).
	@if [ -d .git ]; then \
		git config filter.nbstripout.clean "'$(CURDIR)/$(BIN)/python' -m nbstripout --keep-id" && \
		git config filter.nbstripout.smudge cat && \
		mkdir -p .git/info && touch .git/info/attributes && \
		(grep -qx '*.ipynb filter=nbstripout' .git/info/attributes || echo '*.ipynb filter=nbstripout' >> .git/info/attributes) && \
		echo "git filter: notebooks are committed without outputs (nbstripout --keep-id)"; fi
	@touch $@

# --- make book --------------------------------------------------------------------------------
# tools/build_book.py executes the chapters one after another with live progress (chapter k of N, cell,
# elapsed time, the training bar), reuses the executed copy of any chapter whose code cells, library (shared
# modules and the method packages it imports), pins and profile are unchanged (its prose is taken from the
# notebook), and builds the HTML from the executed copies. CHAPTER=irn re-executes one.
CHAPTER ?=

book:
	@mkdir -p _build && rm -f _build/times-book.txt
	@$(STAGE) book "set up .venv (installs only when the pins changed)" $(MAKE) --no-print-directory venv
	@$(STAGE) book "execute the chapters ($(PROFILE) profile) and build the HTML book" \
		$(BIN)/python tools/build_book.py --profile $(PROFILE) --out _build --chapters "$(CHAPTER)" \
		--times _build/times-book.txt
	@echo "Stage and chapter times:" && cat _build/times-book.txt
	@echo "The book is at _build/html/index.html; the claims at _build/claims.json"

# --- make test --------------------------------------------------------------------------------
test:
	@mkdir -p _build && rm -f _build/times-test.txt
	$(STAGE) test "set up .venv (installs only when the pins changed)" $(MAKE) --no-print-directory venv
	$(STAGE) test "library tests" \
		$(BIN)/python -m pytest tests --ignore=tests/kernels --ignore=tests/browser -q
	$(STAGE) test "Triton kernels under TRITON_INTERPRET=1 (vs the PyTorch reference)" \
		env TRITON_INTERPRET=1 $(BIN)/python -m pytest tests/kernels -q
	$(STAGE) test "format and lint (ruff)" \
		sh -c '$(BIN)/ruff format --check --quiet lib tests tools book && $(BIN)/ruff check --quiet lib tests tools book'
	$(STAGE) test "type check (mypy)" $(BIN)/mypy
	$(STAGE) test "execute every chapter (smoke profile) and build the book" \
		$(BIN)/python tools/build_book.py --profile smoke --out $(SMOKE)/_build --times _build/times-test.txt
	$(STAGE) test "browser test of the built HTML (headless Chromium)" \
		env REPROBOOK_HTML=$(SMOKE)/_build/html $(BIN)/python -m pytest tests/browser -q -rs --durations=3
	@echo "Stage times:" && cat _build/times-test.txt

lab: $(INSTALLED)
	$(BIN)/jupyter lab book/

lint: $(INSTALLED)
	$(BIN)/ruff format lib tests tools book && $(BIN)/ruff check --fix lib tests tools book
	$(BIN)/mypy

clean:
	rm -rf _build _smoke
