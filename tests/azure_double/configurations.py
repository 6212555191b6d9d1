"""Configurations (server parameters) of the Azure double: Configurations_ListByServer, _Get, _Update, _Put."""

from __future__ import annotations
