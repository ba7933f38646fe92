"""CareWatch's central side: ``ingest`` (MQTT consumer), ``store`` (InfluxDB and the embedded
SQLite store behind one interface), the device ``registry`` and the shared ``settings``.
Alerts, notifications and the API arrive with their own issues.

Run a service with ``python -m cloud <service> --config FILE`` (``python -m cloud --help``).
"""

from cloud.errors import CloudError

__all__ = ["CloudError"]
