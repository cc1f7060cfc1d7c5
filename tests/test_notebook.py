import sys
import types

import pytest

from reprobook.notebook import glue, show_source, table


def test_glue_hands_the_value_to_myst_nb_and_echoes_nothing(monkeypatch, capsys):
    monkeypatch.setenv("REPROBOOK_CHAPTER", "irn")  # the book build
    calls = []
    fake = types.SimpleNamespace(glue=lambda name, value, display: calls.append((name, value, display)))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("psnr_db", 41.25) is None
    assert calls == [("psnr_db", 41.25, False)]
    assert capsys.readouterr().out == ""


def test_outside_the_build_a_glued_value_shows_under_its_cell(monkeypatch, capsys):
    monkeypatch.delenv("REPROBOOK_CHAPTER", raising=False)
    monkeypatch.setitem(sys.modules, "myst_nb", types.SimpleNamespace(glue=lambda *a, **k: None))
    glue("psnr_db", 41.254321)
    assert capsys.readouterr().out.strip() == "psnr_db = 41.25"


def test_glue_without_myst_nb_is_silent(monkeypatch):
    monkeypatch.setenv("REPROBOOK_CHAPTER", "irn")
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes the import fail
    assert glue("psnr_db", 41.25) is None


def test_glue_rejects_names_a_role_cannot_use():
    with pytest.raises(ValueError, match="name must be a Python identifier"):
        glue("psnr db", 1.0)


def test_table_renders_html_with_formats_and_refuses_unknown_columns():
    styler = table([{"method": "IRN", "PSNR": 33.123}, {"method": "bicubic", "PSNR": 31.0}], {"PSNR": "{:.2f}"})
    html = styler.to_html()
    assert "<table" in html and "33.12" in html and "33.123" not in html
    by_label = table({"IRN": {"PSNR": 33.1}}, {"PSNR": "{:.1f}"})
    assert list(by_label.data.index) == ["IRN"]
    with pytest.raises(ValueError, match="SSIM"):
        table([{"PSNR": 1.0}], {"SSIM": "{:.2f}"})


def test_show_source_drops_the_docstring(capsys):
    def documented(x):
        """A docstring the prose replaces."""
        return x + 1

    show_source(documented)
    printed = capsys.readouterr().out
    assert "return x + 1" in printed and "docstring" not in printed


def test_plain_log_ticks_label_a_short_log_axis_without_powers_of_ten():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reprobook.notebook import plain_log_ticks

    fig, ax = plt.subplots()
    ax.plot([0, 1], [3.2, 4.0])
    ax.set_yscale("log")
    fig.canvas.draw()
    default = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    plain_log_ticks(ax.yaxis)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert any("10^" in label for label in default)  # matplotlib's own labels, which the helper replaces
    assert labels and not any("10" in label for label in labels) and "3.5" in labels


def test_history_plot_labels_its_log_axis_with_plain_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    from reprobook.train import History

    history = History()
    for step, loss in enumerate((4.0, 3.6, 3.2), start=1):
        history.append(step, {"loss": loss})
    ax = history.plot("loss", logy=True)
    assert ax.get_yscale() == "log"
    assert type(ax.yaxis.get_minor_formatter()) is LogFormatter  # matplotlib's default is a subclass
    plt.close(ax.figure)
