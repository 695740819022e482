"""Desk fixtures: a qasync loop that runs inside pytest-qt's waits (PLATFORM-NOTES.md)."""

import asyncio

import pytest


@pytest.fixture
def aloop(qapp):
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    # never loop.stop(): it calls QApplication.exit() and later qtbot waits time out.
    # Mark the loop stopped by hand, undo what already_running set up, then close it.
    qapp.aboutToQuit.disconnect(loop._after_run_forever)
    loop._QEventLoop__is_running = False
    loop._after_run_forever()
    asyncio.events._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def desk_factory(qtbot, aloop):
    from app.desk import DeskWindow
    from engine.core.profile import DeskConfig

    made = []

    def make(instance, **kw):
        w = DeskWindow(instance, DeskConfig(name="test-desk", stale_ms=300), poll_ms=25, **kw)
        qtbot.addWidget(w)
        w.start()
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def desk_theme(qapp):
    """The desk's own theme (app.theme) for pictures, undone after: it is global."""
    from app.theme import apply_theme

    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    apply_theme(qapp)
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)
