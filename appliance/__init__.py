"""A home conference line: modems answer, TwiML decides, numpy mixes."""

__version__ = "0.1.0"
