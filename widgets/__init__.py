"""Reusable desk widgets. Each takes plain data (numbers, numpy arrays) and imports neither
``app`` nor ``engine``."""

from widgets.alerts import Alert, AlertsModel, AlertsPanel
from widgets.auditlog import AuditLogModel, AuditLogView
from widgets.blotter import BlotterModel, BlotterWidget
from widgets.depthchart import DepthChart
from widgets.eventlog import EventLog
from widgets.feedhealth import FeedHealth
from widgets.killswitch import KillSwitchPanel
from widgets.ladder import LadderModel, LadderView, LadderWidget, WorkingOrder
from widgets.latency import LatencyHistogram, LatencyPanel
from widgets.limits import LimitEditor, LimitsModel
from widgets.pnlchart import PnlChart
from widgets.positions import PositionsModel, PositionsTable
from widgets.pricechart import PriceChart
from widgets.recon import ReconTable
from widgets.replaybar import ReplayBar
from widgets.report import ReportView
from widgets.risk import Gauge, RiskPanel, VarModel
from widgets.status import ConnectionStatus
from widgets.strategies import StrategyPanel
from widgets.tape import TimeAndSales, TimeAndSalesModel

__all__ = [
    "Alert",
    "AlertsModel",
    "AlertsPanel",
    "AuditLogModel",
    "AuditLogView",
    "BlotterModel",
    "BlotterWidget",
    "ConnectionStatus",
    "DepthChart",
    "EventLog",
    "FeedHealth",
    "Gauge",
    "KillSwitchPanel",
    "LadderModel",
    "LadderView",
    "LadderWidget",
    "LatencyHistogram",
    "LatencyPanel",
    "LimitEditor",
    "LimitsModel",
    "PnlChart",
    "PositionsModel",
    "PositionsTable",
    "PriceChart",
    "ReconTable",
    "ReplayBar",
    "ReportView",
    "RiskPanel",
    "StrategyPanel",
    "TimeAndSales",
    "TimeAndSalesModel",
    "VarModel",
    "WorkingOrder",
]
