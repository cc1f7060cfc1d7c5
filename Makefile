# reprobook: `make book` builds the HTML book, `make test` runs every test. Both set up .venv.
# Stage timings go to stdout and to _build/times-<target>.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROFILE ?= $(or $(REPROBOOK_PROFILE),book)
STAGE := bash .ci/stage
SMOKE := _smoke
LIB_FILES := $(shell find lib -name '*.py' -not -path '*/__pycache__/*')
BOOK_FILES := _config.yml _toc.yml $(shell find book -type f -not -path '*/.ipynb_checkpoints/*')

.PHONY: book test lab venv lint clean
.DELETE_ON_ERROR:

venv: $(INSTALLED)

# Re-installs only when the dependency list or the pins change.
$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[book,test,compression]"
	@touch $@

# --- make book --------------------------------------------------------------------------------
# Jupyter's cache knows notebook code, not the library or the profile: this key clears it when
# either changes, so `make book` re-executes only what could have changed.
_build/.exec-key-$(PROFILE): $(LIB_FILES) $(INSTALLED)
	@mkdir -p _build && rm -rf _build/.jupyter_cache _build/.exec-key-*
	@touch $@

_build/html/index.html: _build/.exec-key-$(PROFILE) $(BOOK_FILES)
	$(STAGE) book "execute ($(PROFILE) profile) and build the HTML book" \
		env REPROBOOK_PROFILE=$(PROFILE) $(BIN)/jupyter-book build --all -W --keep-going . 
	@touch $@

book:
	@mkdir -p _build && rm -f _build/times-book.txt
	@$(STAGE) book "set up .venv (installs only when the pins changed)" $(MAKE) --no-print-directory venv
	@$(MAKE) --no-print-directory _build/html/index.html
	@echo "Stage times:" && cat _build/times-book.txt
	@echo "The book is at _build/html/index.html"

# --- make test --------------------------------------------------------------------------------
test:
	@mkdir -p _build && rm -f _build/times-test.txt
	$(STAGE) test "set up .venv (installs only when the pins changed)" $(MAKE) --no-print-directory venv
	$(STAGE) test "library tests" \
		$(BIN)/python -m pytest tests --ignore=tests/kernels --ignore=tests/browser -q
	$(STAGE) test "Triton kernels under TRITON_INTERPRET=1 (vs the PyTorch reference)" \
		env TRITON_INTERPRET=1 $(BIN)/python -m pytest tests/kernels -q
	$(STAGE) test "format and lint (ruff)" \
		sh -c '$(BIN)/ruff format --check --quiet lib tests && $(BIN)/ruff check --quiet lib tests'
	$(STAGE) test "type check (mypy)" $(BIN)/mypy
	@rm -rf $(SMOKE) && mkdir -p $(SMOKE) && cp -r book _toc.yml $(SMOKE)/
	@sed 's/^  execute_notebooks: .*/  execute_notebooks: "off"/' _config.yml > $(SMOKE)/_config.yml
	$(STAGE) test "notebooks with nbmake (smoke profile)" \
		env REPROBOOK_PROFILE=smoke $(BIN)/python -m pytest --nbmake --overwrite --nbmake-timeout=600 -q -p no:cacheprovider $(SMOKE)/book
	$(STAGE) test "build the book from the executed notebooks" \
		$(BIN)/jupyter-book build --all -W --keep-going $(SMOKE)
	$(STAGE) test "browser test of the built HTML (headless Chromium)" \
		env REPROBOOK_HTML=$(SMOKE)/_build/html $(BIN)/python -m pytest tests/browser -q -rs
	@echo "Stage times:" && cat _build/times-test.txt

lab: $(INSTALLED)
	$(BIN)/jupyter lab book/

lint: $(INSTALLED)
	$(BIN)/ruff format lib tests && $(BIN)/ruff check --fix lib tests
	$(BIN)/mypy

clean:
	rm -rf _build _smoke
