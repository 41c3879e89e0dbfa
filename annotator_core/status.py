"""What `va status` and the services' health pages report: settings in effect and store contents."""

from __future__ import annotations

from typing import Any

from annotator_core.errors import VAError
from annotator_core.settings import Settings


def collect_status(settings: Settings) -> dict[str, Any]:
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    report: dict[str, Any] = {"data_dir": str(settings.data_dir)}
    shots = ShotStore.from_settings(settings)
    report["lancedb"] = {"uri": shots.uri, "counts": shots.counts(), "version": shots.version()}
    url = settings.resolved_database_url
    shown = url.split("@")[-1] if "@" in url else url
    try:
        store = AnnotationStore.from_settings(settings)
        report["database"] = {"url": shown, "ok": True, "revision": store.db.revision(), "counts": store.table_counts()}
        store.db.close()
    except VAError as exc:
        report["database"] = {"url": shown, "ok": False, "error": str(exc)}
    report["encoder"] = {"configured": settings.encoder, "in_table": shots.encoder()}
    from annotator_core.media.proxy import ProxyStore  # titles without a playable rendition (issue 17)

    proxies = ProxyStore.from_settings(settings)
    unplayable = proxies.count_failed()
    report["proxies"] = {"mode": settings.proxy_mode, "dir": proxies.options.folder, "unplayable": unplayable}
    groups = shots.read_duplicates(columns=["representative"]).column("representative").to_pylist()
    report["duplicates"] = {  # issue 16: shots that are near-duplicates of another (their group's representative)
        "enabled": settings.duplicates,
        "groups": sum(groups),
        "duplicate_shots": len(groups) - sum(groups),
    }
    return report
