"""The replay bar: play, pause, speed and a time slider over a recorded day.

``ReplayBar`` shows where a replay is (``set_state(first_ns, last_ns, now_ns, speed,
paused)``: UTC ns, as the engine's header has them) and turns what the user does into
signals; it sends nothing itself and knows nothing of engines (``app.review`` connects it):

- ``play_requested()`` / ``pause_requested()``: the play/pause button;
- ``speed_requested(float)``: a speed picked from the list (0.25× … 100×) or typed into it
  ("3", "3x", "0.5×"); the engine judges the value (0.1 .. 1000), the bar only reads it;
- ``jump_requested(int)``: UTC ns, from the slider (dragging shows the target time, release
  jumps) or the "jump to" field (``HH:MM:SS[.mmm]`` on the recorded day, UTC).

The recorded time now is shown large, the state ("paused" / "playing 4×") beside it and the
engine's last answer (or why an input was not sent) in the status line (``set_status``).
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QSlider,
    QToolBar,
    QToolButton,
)

__all__ = ["ReplayBar", "SPEEDS", "clock_text", "parse_clock", "parse_speed"]

#: the speeds the list offers (others may be typed)
SPEEDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0)
NS_PER_DAY = 86_400 * 1_000_000_000
_CLOCK_RE = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s*$")
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*[x×]?\s*$", re.IGNORECASE)


def clock_text(ts_ns: int) -> str:
    """UTC ns as ``10:31:02.120``."""
    ms = (int(ts_ns) // 1_000_000) % 86_400_000
    return (f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"
            f".{ms % 1000:03d}")


def speed_label(speed: float) -> str:
    return f"{speed:g}×"


def parse_clock(text: str, day_ns: int) -> int | str:
    """``HH:MM:SS[.mmm]`` on the UTC day that holds ``day_ns`` -> UTC ns; a string says why
    the text is not a time."""
    m = _CLOCK_RE.match(text)
    if not m:
        return f"{text.strip()!r} is not a time: write HH:MM:SS or HH:MM:SS.mmm"
    h, mi, s = int(m[1]), int(m[2]), int(m[3])
    if h > 23 or mi > 59 or s > 59:
        return f"{text.strip()!r} is not a time of day (00:00:00 .. 23:59:59.999)"
    ms = int((m[4] or "0").ljust(3, "0"))
    midnight = day_ns - day_ns % NS_PER_DAY
    return midnight + ((h * 60 + mi) * 60 + s) * 1_000_000_000 + ms * 1_000_000


def parse_speed(text: str) -> float | str:
    """"4", "4x", "0.5×" -> the number; a string says why not."""
    m = _SPEED_RE.match(text)
    if not m:
        return f"{text.strip()!r} is not a speed: write a number, like 4 or 0.5x"
    return float(m[1])


class ReplayBar(QToolBar):
    play_requested = Signal()
    pause_requested = Signal()
    speed_requested = Signal(float)
    jump_requested = Signal(object)  # int UTC ns (a Python int: beyond a C int's range)

    def __init__(self, parent=None) -> None:
        super().__init__("Replay", parent)
        self.setObjectName("replayBar")
        self.setMovable(False)
        self.first_ns = self.last_ns = self.now_ns = 0
        self.speed = 1.0
        self.paused = True
        self.dragging = False

        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.play = QToolButton(self)
        self.play.setObjectName("replayPlay")
        self.play.clicked.connect(self._on_play)
        self.addWidget(self.play)

        self.speeds = QComboBox(self)
        self.speeds.setObjectName("replaySpeed")
        self.speeds.setEditable(True)
        self.speeds.setInsertPolicy(QComboBox.NoInsert)
        self.speeds.setToolTip("playing speed: pick one, or type a number and press Enter")
        for s in SPEEDS:
            self.speeds.addItem(speed_label(s), s)
        self.speeds.activated.connect(self._on_speed_picked)
        self.speeds.lineEdit().returnPressed.connect(self._on_speed_typed)
        self.addWidget(self.speeds)

        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setObjectName("replaySlider")
        self.slider.setMinimumWidth(240)
        self.slider.setTracking(True)
        self.slider.sliderPressed.connect(self._on_drag_start)
        self.slider.sliderMoved.connect(self._on_drag)
        self.slider.sliderReleased.connect(self._on_drag_end)
        self.addWidget(self.slider)

        self.time = QLabel("--:--:--.---", self)
        self.time.setObjectName("replayTime")
        big = QFont(mono)
        big.setBold(True)
        self.time.setFont(big)
        # large: the one figure a reviewer reads all the time (inline, so a theme's QLabel
        # rule cannot shrink it)
        self.time.setStyleSheet(f"font-family: '{mono.family()}'; font-size: 20px; "
                                f"font-weight: bold; padding: 0 8px;")
        self.time.setToolTip("the recorded time now (UTC)")
        self.addWidget(self.time)

        self.state = QLabel("", self)
        self.state.setObjectName("replayState")
        self.addWidget(self.state)

        self.jump = QLineEdit(self)
        self.jump.setObjectName("replayJump")
        self.jump.setPlaceholderText("jump to HH:MM:SS[.mmm]")
        self.jump.setFont(mono)
        self.jump.setMaximumWidth(190)
        self.jump.returnPressed.connect(self._on_jump_typed)
        self.addWidget(self.jump)

        self.status = QLabel("", self)
        self.status.setObjectName("replayStatus")
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.addWidget(self.status)
        self._show()

    # -- what the engine says --------------------------------------------------------------------
    def set_state(self, first_ns: int, last_ns: int, now_ns: int, speed: float,
                  paused: bool) -> None:
        """Where the replay is (UTC ns), its speed, paused or playing."""
        changed = (first_ns, last_ns, now_ns, speed, paused) != (
            self.first_ns, self.last_ns, self.now_ns, self.speed, self.paused)
        self.first_ns, self.last_ns, self.now_ns = int(first_ns), int(last_ns), int(now_ns)
        self.speed, self.paused = float(speed), bool(paused)
        if changed:
            self._show()

    def set_status(self, text: str, ok: bool = True) -> None:
        """The engine's answer to the last control (``ok`` False: a refusal, shown so)."""
        self.status.setText(text)
        self.status.setProperty("refused", not ok)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    # -- showing ---------------------------------------------------------------------------------
    def _show(self) -> None:
        self.play.setText("▶ Play" if self.paused else "❚❚ Pause")
        self.play.setToolTip("play the recorded day from here" if self.paused
                             else "stop the recorded market where it is")
        self.state.setText("paused" if self.paused else f"playing {speed_label(self.speed)}")
        self._show_speed()
        span_ms = max(0, (self.last_ns - self.first_ns) // 1_000_000)
        if self.slider.maximum() != span_ms:
            self.slider.setRange(0, span_ms)
        if not self.dragging:
            self.time.setText(clock_text(self.now_ns) if self.first_ns else "--:--:--.---")
            pos = min(max(0, (self.now_ns - self.first_ns) // 1_000_000), span_ms)
            if self.slider.value() != pos:
                self.slider.blockSignals(True)
                self.slider.setValue(pos)
                self.slider.blockSignals(False)

    def _show_speed(self) -> None:
        if self.speeds.lineEdit().hasFocus():
            return  # the user is typing a speed
        k = self.speeds.findData(self.speed)
        if k < 0:  # a speed not in the list (typed, or the launcher's): listed in its place
            k = sum(1 for s in SPEEDS if s < self.speed)
            self.speeds.insertItem(k, speed_label(self.speed), self.speed)
        if self.speeds.currentIndex() != k:
            self.speeds.setCurrentIndex(k)
        self.speeds.setEditText(speed_label(self.speed))

    def _slider_ns(self, value: int) -> int:
        return self.first_ns + int(value) * 1_000_000

    # -- what the user does ----------------------------------------------------------------------
    def _on_play(self) -> None:
        (self.play_requested if self.paused else self.pause_requested).emit()

    def _on_speed_picked(self, index: int) -> None:
        value = self.speeds.itemData(index)
        if value is not None:
            self.speed_requested.emit(float(value))

    def _on_speed_typed(self) -> None:
        v = parse_speed(self.speeds.currentText())
        if isinstance(v, str):
            self.set_status(v, ok=False)
            return
        self.speed_requested.emit(v)

    def _on_drag_start(self) -> None:
        self.dragging = True
        self._on_drag(self.slider.value())

    def _on_drag(self, value: int) -> None:
        self.time.setText(f"→ {clock_text(self._slider_ns(value))}")

    def _on_drag_end(self) -> None:
        self.dragging = False
        target = self._slider_ns(self.slider.value())
        self._show()
        self.jump_requested.emit(target)

    def _on_jump_typed(self) -> None:
        day = self.first_ns or self.now_ns
        v = parse_clock(self.jump.text(), day)
        if isinstance(v, str):
            self.set_status(v, ok=False)
            return
        self.jump_requested.emit(v)
