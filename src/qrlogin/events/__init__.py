"""Event bus: a port and adapters. Events carry only ``{channel, version}``; every listener
re-reads the row, so a lost event can delay a requester, never lose an approval."""
