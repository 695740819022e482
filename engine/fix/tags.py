"""FIX 4.4 vocabulary: tag numbers, MsgType values, enumerated values, NumInGroup tags.

Tags and MsgTypes are plain ``int``/``bytes`` class attributes rather than enums: they are
dictionary keys and comparands on the hot path, where an ``Enum`` member's own ``__hash__``
(``bytes`` enums hash by name) and attribute lookup would cost or surprise. ``tag_name`` and
``msg_type_name`` give names for logs. ``SessionRejectReason`` is an ``IntEnum``: it only
appears on the error path.
"""

from __future__ import annotations

import enum

__all__ = [
    "Tag",
    "MsgType",
    "SessionRejectReason",
    "Side",
    "OrdType",
    "TimeInForce",
    "ExecType",
    "OrdStatus",
    "MDUpdateAction",
    "MDEntryType",
    "MDReqRejReason",
    "SubscriptionRequestType",
    "NUM_IN_GROUP_TAGS",
    "HEADER_TAGS",
    "RAW_DATA_TAGS",
    "GROUP_MEMBERS",
    "tag_name",
    "msg_type_name",
]


class Tag:
    """Tag numbers used by Helmdesk (FIX 4.4 field dictionary)."""

    Account = 1
    AvgPx = 6
    BeginSeqNo = 7
    BeginString = 8
    BodyLength = 9
    CheckSum = 10
    ClOrdID = 11
    Commission = 12
    CumQty = 14
    Currency = 15
    EndSeqNo = 16
    ExecID = 17
    ExecInst = 18
    HandlInst = 21
    SecurityIDSource = 22
    LastMkt = 30
    LastPx = 31
    LastQty = 32
    MsgSeqNum = 34
    MsgType = 35
    NewSeqNo = 36
    OrderID = 37
    OrderQty = 38
    OrdStatus = 39
    OrdType = 40
    OrigClOrdID = 41
    PossDupFlag = 43
    Price = 44
    RefSeqNum = 45
    SecurityID = 48
    SenderCompID = 49
    SenderSubID = 50
    SendingTime = 52
    Side = 54
    Symbol = 55
    TargetCompID = 56
    TargetSubID = 57
    Text = 58
    TimeInForce = 59
    TransactTime = 60
    RptSeq = 83
    Signature = 89
    SecureDataLen = 90
    SecureData = 91
    SignatureLength = 93
    RawDataLength = 95
    RawData = 96
    PossResend = 97
    EncryptMethod = 98
    StopPx = 99
    ExDestination = 100
    CxlRejReason = 102
    OrdRejReason = 103
    HeartBtInt = 108
    MinQty = 110
    MaxFloor = 111
    TestReqID = 112
    OnBehalfOfCompID = 115
    OrigSendingTime = 122
    GapFillFlag = 123
    ExpireTime = 126
    DeliverToCompID = 128
    NoRelatedSym = 146
    ExecType = 150
    LeavesQty = 151
    EffectiveTime = 168
    SecondaryOrderID = 198
    MaturityMonthYear = 200
    MDReqID = 262
    SubscriptionRequestType = 263
    MarketDepth = 264
    MDUpdateType = 265
    AggregatedBook = 266
    NoMDEntryTypes = 267
    NoMDEntries = 268
    MDEntryType = 269
    MDEntryPx = 270
    MDEntrySize = 271
    MDEntryDate = 272
    MDEntryTime = 273
    TickDirection = 274
    MDMkt = 275
    QuoteCondition = 276
    TradeCondition = 277
    MDEntryID = 278
    MDUpdateAction = 279
    MDEntryRefID = 280
    MDReqRejReason = 281
    MDEntryOriginator = 282
    DeleteReason = 285
    OpenCloseSettlFlag = 286
    SellerDays = 287
    MDEntryBuyer = 288
    MDEntrySeller = 289
    MDEntryPositionNo = 290
    NumberOfOrders = 346
    MessageEncoding = 347
    EncodedTextLen = 354
    EncodedText = 355
    LastMsgSeqNumProcessed = 369
    RefTagID = 371
    RefMsgType = 372
    SessionRejectReason = 373
    BusinessRejectRefID = 379
    BusinessRejectReason = 380
    CxlRejResponseTo = 434
    NoPartyIDs = 453
    PartyID = 448
    PartyIDSource = 447
    PartyRole = 452
    TestMessageIndicator = 464
    Username = 553
    Password = 554
    NoLegs = 555
    ResetSeqNumFlag = 141
    NoMiscFees = 136
    NoHops = 627
    HopCompID = 628
    HopSendingTime = 629
    HopRefID = 630
    NextExpectedMsgSeqNum = 789
    MDPriceLevel = 1023


class MsgType:
    """MsgType (35) values as they appear on the wire."""

    Heartbeat = b"0"
    TestRequest = b"1"
    ResendRequest = b"2"
    Reject = b"3"
    SequenceReset = b"4"
    Logout = b"5"
    Logon = b"A"
    NewOrderSingle = b"D"
    OrderCancelRequest = b"F"
    OrderCancelReplaceRequest = b"G"
    OrderStatusRequest = b"H"
    ExecutionReport = b"8"
    OrderCancelReject = b"9"
    MarketDataRequest = b"V"
    MarketDataSnapshotFullRefresh = b"W"
    MarketDataIncrementalRefresh = b"X"
    MarketDataRequestReject = b"Y"
    BusinessMessageReject = b"j"

    #: Administrative (session-level) messages; the rest are application messages.
    ADMIN = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})


class SessionRejectReason(enum.IntEnum):
    """SessionRejectReason (373) values of FIX 4.4, for a Reject (35=3)."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_THIS_MESSAGE_TYPE = 2
    UNDEFINED_TAG = 3
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_IS_INCORRECT = 5  #: out of range for this tag
    INCORRECT_DATA_FORMAT_FOR_VALUE = 6
    DECRYPTION_PROBLEM = 7
    SIGNATURE_PROBLEM = 8
    COMPID_PROBLEM = 9
    SENDINGTIME_ACCURACY_PROBLEM = 10
    INVALID_MSGTYPE = 11
    XML_VALIDATION_ERROR = 12
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    REPEATING_GROUP_FIELDS_OUT_OF_ORDER = 15
    INCORRECT_NUMINGROUP_COUNT_FOR_REPEATING_GROUP = 16
    NON_DATA_VALUE_INCLUDES_FIELD_DELIMITER = 17  #: SOH inside a non-data value
    OTHER = 99


class Side:
    Buy = b"1"
    Sell = b"2"
    SellShort = b"5"


class OrdType:
    Market = b"1"
    Limit = b"2"
    Stop = b"3"
    StopLimit = b"4"


class TimeInForce:
    Day = b"0"
    GoodTillCancel = b"1"
    AtTheOpening = b"2"
    ImmediateOrCancel = b"3"
    FillOrKill = b"4"
    GoodTillDate = b"6"


class ExecType:
    New = b"0"
    DoneForDay = b"3"
    Canceled = b"4"
    Replaced = b"5"
    PendingCancel = b"6"
    Stopped = b"7"
    Rejected = b"8"
    Suspended = b"9"
    PendingNew = b"A"
    Calculated = b"B"
    Expired = b"C"
    Restated = b"D"
    PendingReplace = b"E"
    Trade = b"F"
    TradeCorrect = b"G"
    TradeCancel = b"H"
    OrderStatus = b"I"


class OrdStatus:
    New = b"0"
    PartiallyFilled = b"1"
    Filled = b"2"
    DoneForDay = b"3"
    Canceled = b"4"
    PendingCancel = b"6"
    Stopped = b"7"
    Rejected = b"8"
    Suspended = b"9"
    PendingNew = b"A"
    Calculated = b"B"
    Expired = b"C"
    AcceptedForBidding = b"D"
    PendingReplace = b"E"


class MDUpdateAction:
    New = b"0"
    Change = b"1"
    Delete = b"2"


class MDEntryType:
    Bid = b"0"
    Offer = b"1"
    Trade = b"2"


class SubscriptionRequestType:
    Snapshot = b"0"
    SnapshotAndUpdates = b"1"
    Unsubscribe = b"2"


class MDReqRejReason:
    """MDReqRejReason (281) of a MarketDataRequestReject (35=Y)."""

    UnknownSymbol = b"0"
    DuplicateMDReqID = b"1"
    InsufficientBandwidth = b"2"
    InsufficientPermissions = b"3"
    UnsupportedSubscriptionRequestType = b"4"
    UnsupportedMarketDepth = b"5"
    UnsupportedMDUpdateType = b"6"
    UnsupportedAggregatedBook = b"7"
    UnsupportedMDEntryType = b"8"
    #: Helmdesk's own value: no FIX 4.4 reason fits (a required field or group is missing or
    #: malformed, an unsubscribe names no live request); Text (58) says which
    Other = b"Z"


#: NumInGroup tags of FIX 4.4 that Helmdesk may meet (the count field that opens a repeating
#: group). A tag may appear more than once in a message only after one of these.
NUM_IN_GROUP_TAGS = frozenset({
    Tag.NoMiscFees, Tag.NoRelatedSym, Tag.NoMDEntryTypes, Tag.NoMDEntries, Tag.NoPartyIDs,
    Tag.NoLegs, Tag.NoHops,
    73,  # NoOrders
    78,  # NoAllocs
    124,  # NoExecs
    199,  # NoIOIQualifiers
    215,  # NoRoutingIDs
    232,  # NoStipulations
    295,  # NoQuoteEntries
    296,  # NoQuoteSets
    382,  # NoContraBrokers
    384,  # NoMsgTypes
    386,  # NoTradingSessions
    398,  # NoBidDescriptors
    420,  # NoBidComponents
    428,  # NoStrikes
    454,  # NoSecurityAltID
    457,  # NoUnderlyingSecurityAltID
    518,  # NoContAmts
    539,  # NoNestedPartyIDs
    552,  # NoSides
    576,  # NoClearingInstructions
    580,  # NoDates
    604,  # NoLegSecurityAltID
    670,  # NoLegAllocs
    683,  # NoLegStipulations
    702,  # NoPositions
    711,  # NoUnderlyings
    753,  # NoPosAmt
    756,  # NoNested2PartyIDs
    768,  # NoTrdRegTimestamps
    802,  # NoPartySubIDs
    804,  # NoNestedPartySubIDs
    806,  # NoNested2PartySubIDs
    864,  # NoEvents
    870,  # NoInstrAttrib
    948,  # NoNested3PartyIDs
    952,  # NoNested3PartySubIDs
})

#: The standard header's fields (FIX 4.4): they may not repeat outside the Hop group.
HEADER_TAGS = frozenset({
    8, 9, 35, 49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52,
    122, 212, 213, 347, 369, 627, 628, 629, 630,
})

#: Length tag → data tag of FIX 4.4's "data" fields, whose values may hold any byte (SOH too).
RAW_DATA_TAGS = {
    90: 91,  # SecureDataLen → SecureData
    93: 89,  # SignatureLength → Signature
    95: 96,  # RawDataLength → RawData
    212: 213,  # XmlDataLen → XmlData
    348: 349,  # EncodedIssuerLen → EncodedIssuer
    350: 351,  # EncodedSecurityDescLen → EncodedSecurityDesc
    352: 353,  # EncodedListExecInstLen → EncodedListExecInst
    354: 355,  # EncodedTextLen → EncodedText
    356: 357,  # EncodedSubjectLen → EncodedSubject
    358: 359,  # EncodedHeadlineLen → EncodedHeadline
    360: 361,  # EncodedAllocTextLen → EncodedAllocText
    362: 363,  # EncodedUnderlyingIssuerLen → EncodedUnderlyingIssuer
    364: 365,  # EncodedUnderlyingSecurityDescLen → EncodedUnderlyingSecurityDesc
    445: 446,  # EncodedListStatusTextLen → EncodedListStatusText
    618: 619,  # EncodedLegIssuerLen → EncodedLegIssuer
    621: 622,  # EncodedLegSecurityDescLen → EncodedLegSecurityDesc
}

_TAG_NAMES = {v: k for k, v in vars(Tag).items() if not k.startswith("_")}
_MSG_TYPE_NAMES = {v: k for k, v in vars(MsgType).items() if isinstance(v, bytes)}


def tag_name(tag: int) -> str:
    """``"ClOrdID(11)"`` for a known tag, ``"11"``-style digits otherwise."""
    name = _TAG_NAMES.get(tag)
    return f"{name}({tag})" if name else str(tag)


def msg_type_name(msg_type: bytes) -> str:
    """``"ExecutionReport(8)"`` for a known MsgType, the value as text otherwise."""
    text = msg_type.decode("ascii", "replace")
    name = _MSG_TYPE_NAMES.get(msg_type)
    return f"{name}({text})" if name else text


_INSTRUMENT = (55, 65, 48, 22, 454, 455, 456, 460, 461, 167, 762, 200, 541, 201, 224, 225, 239,
               226, 227, 228, 255, 543, 470, 471, 472, 240, 202, 947, 206, 231, 223, 207, 106,
               348, 349, 107, 350, 351, 691, 667, 875, 876, 873, 874)

#: Member tags of the repeating groups Helmdesk reads (FIX 4.4 components), by NumInGroup tag:
#: ``FixMessage.groups`` ends the last entry at the first field that is not one of them.
GROUP_MEMBERS: dict[int, frozenset[int]] = {
    # MDIncGrp and MDFullGrp; MDPriceLevel (1023) and RptSeq (83) as in FIX 5.0's MDIncGrp
    Tag.NoMDEntries: frozenset((
        279, 285, 269, 278, 280, *_INSTRUMENT, 291, 292, 270, 15, 271, 272, 273, 274, 275, 336,
        625, 326, 327, 276, 277, 282, 283, 284, 286, 59, 432, 126, 110, 18, 287, 37, 299, 288,
        289, 346, 290, 546, 811, 451, 58, 354, 355, 387, 1023, 83,
    )),
    Tag.NoMDEntryTypes: frozenset((269,)),
    Tag.NoRelatedSym: frozenset(_INSTRUMENT),
    Tag.NoPartyIDs: frozenset((448, 447, 452, 802, 523, 803)),
    Tag.NoMiscFees: frozenset((137, 138, 139, 891)),
    Tag.NoHops: frozenset((628, 629, 630)),
    384: frozenset((372, 385)),  # NoMsgTypes (Logon)
    382: frozenset((375, 337, 437, 438, 655)),  # NoContraBrokers
}
