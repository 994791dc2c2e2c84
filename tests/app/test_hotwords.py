"""Hotword lists: editing, saved named lists that survive a restart, .txt import and export, the per-job pick."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.hotwords_panel import DEFAULT_LIST_NAME, HotwordLibrary, HotwordListModel, HotwordsPanel
from app.settings import Settings, open_settings_file


def test_list_model_passes_the_model_tester_and_refuses_duplicates(qtmodeltester):
    model = HotwordListModel()
    qtmodeltester.check(model)
    assert model.add_terms(("Rotterdam", "harbour", "ROTTERDAM")) == 2
    assert model.add_terms(("harbour",)) == 0
    qtmodeltester.check(model)
    assert not model.setData(model.index(1), "rotterdam")  # would duplicate the first term
    assert not model.setData(model.index(1), "   ")
    assert model.setData(model.index(1), "  Port   of Rotterdam ")
    assert model.terms() == ("Rotterdam", "Port of Rotterdam")
    model.remove_rows([0])
    assert model.terms() == ("Port of Rotterdam",)
    assert model.flags(model.index(0)) & Qt.ItemFlag.ItemIsEditable


def test_named_lists_persist_across_restarts(qtbot, tmp_path):
    ini = tmp_path / "settings.ini"
    panel = HotwordsPanel(HotwordLibrary(Settings(open_settings_file(ini))))
    qtbot.addWidget(panel)
    assert panel.add_terms_from_text("Rotterdam\n# a comment\nharbour  # inline comment\n\nRotterdam\n") == 2
    assert panel.current_list == DEFAULT_LIST_NAME  # the first term made a list
    panel.new_list("Team")
    panel.term_edit.setText("Ana Ruiz")
    qtbot.keyClick(panel.term_edit, Qt.Key.Key_Return)
    panel.add_terms_from_text("Kees Bakker\nPieter de Vries")
    panel.view.selectionModel().select(panel.model.index(1), panel.view.selectionModel().SelectionFlag.Select)
    panel.remove_selected()
    panel.library.settings.sync()
    assert "Pieter de Vries" in ini.read_text(encoding="utf-8")  # on disk, not only in this process's QSettings cache

    reopened = HotwordLibrary(Settings(open_settings_file(ini)))
    assert reopened.names() == [DEFAULT_LIST_NAME, "Team"]
    assert reopened.get(DEFAULT_LIST_NAME) == ("Rotterdam", "harbour")
    assert reopened.get("Team") == ("Ana Ruiz", "Pieter de Vries")
    panel2 = HotwordsPanel(reopened)
    qtbot.addWidget(panel2)
    assert panel2.current_list == "Team"  # the list last edited is shown again
    panel2.delete_list("Team")
    assert HotwordLibrary(Settings(open_settings_file(ini))).names() == [DEFAULT_LIST_NAME]


def test_import_and_export_txt(qtbot, settings, tmp_path):
    source = tmp_path / "names.txt"
    source.write_text("\ufeffAnaïs Nin\nO'Brien\n# not a term\nAnaïs Nin\n", encoding="utf-8")
    panel = HotwordsPanel(HotwordLibrary(settings))
    qtbot.addWidget(panel)
    assert panel.import_file(source) == 2
    assert panel.current_list == "names"  # named after the file when no list existed
    out = tmp_path / "out.txt"
    panel.export_file(out)
    assert out.read_text(encoding="utf-8") == "Anaïs Nin\nO'Brien\n"
    from engine.hotwords import read_hotwords

    assert read_hotwords(out) == ("Anaïs Nin", "O'Brien")  # the CLI reads what the app writes


def test_a_job_picks_a_list_and_its_hits_are_marked(qtbot, make_window, tone):
    window = make_window()
    window.hotwords_panel.new_list("Study", ("words", "seconds"))
    window.hotwords_panel.new_list("Other", ("zebra",))
    job_id = window.add_files([tone])[0]
    assert window.jobs.job(job_id).hotword_list == "Other"  # new jobs take the list shown in the panel
    window.hotword_combo.setCurrentIndex(window.hotword_combo.findData("Study"))
    assert window.jobs.job(job_id).hotwords == ("words", "seconds")
    window.hotwords_panel.list_combo.setCurrentText("Study")
    window.hotwords_panel.add_terms_from_text("from")  # edited after the pick: the job uses the list as it is when it starts
    with qtbot.waitSignal(window.queue.jobFinished, timeout=5000):
        window.transcribe(job_id)
    assert window.queue.worker.backend.requests[0].hotwords == ("words", "seconds", "from")
    hits = window.review.model.index(0).data(window.review.model.HotwordHitsRole)
    assert hits == ["words", "from", "seconds"]  # "words from 0 to 1 seconds"
