"""The owner's web page: login, settings, live status over server-sent events."""

from appliance.web.app import WebApp, WebOptions, create_app
from appliance.web.server import WebServer
from appliance.web.settings import (
    ApiCredentialsManager,
    MemoryApiCredentials,
    MemorySettings,
    SettingsStore,
)

__all__ = [
    "ApiCredentialsManager",
    "MemoryApiCredentials",
    "MemorySettings",
    "SettingsStore",
    "WebApp",
    "WebOptions",
    "WebServer",
    "create_app",
]
