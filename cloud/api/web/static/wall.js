// The staff wall: a tile per resident and the home's open alerts, updated live.

import { get, path } from "./api.js";
import { $, clear } from "./dom.js";
import { connect } from "./live.js";
import { AlertQueue } from "./queue.js";
import { chooseSite, fail, setLiveState, start } from "./shell.js";
import { Tile, gatewaySummary } from "./tiles.js";

const NEWS2_EVERY_MS = 15000;

async function main() {
  await start({ roles: ["admin", "staff"] });
  const { site } = await chooseSite();
  if (!site) {
    $("#tiles-loading").textContent = "Your account has no home.";
    return;
  }
  const residents = await get(path("sites", site.id, "residents"));
  const byId = new Map(residents.map((r) => [r.id, r]));
  const tiles = new Map();
  const list = $("#tiles");
  for (const resident of residents) {
    const tile = new Tile(site, resident);
    tiles.set(resident.id, tile);
    list.append(tile.element);
  }
  $("#tiles-loading").hidden = true;

  const queue = new AlertQueue({
    list: $("#queue"),
    empty: $("#queue-empty"),
    count: $("#queue-count"),
    announcer: $("#announcer"),
    site: site.id,
    residents: byId,
    canAct: true,
    timeZone: site.timezone,
  });
  queue.onChange((alerts) => {
    for (const tile of tiles.values()) {
      tile.alerts = alerts.filter((a) => a.resident === tile.resident.id);
      tile.renderAlerts();
    }
  });

  const loadLatest = async (tile) => {
    const body = await get(path("sites", site.id, "residents", tile.resident.id, "latest"));
    tile.setLatest(body.readings);
    tile.renderVitals();
  };
  const loadNews2 = async (tile) => {
    try {
      tile.news2 = await get(path("sites", site.id, "residents", tile.resident.id, "news2"));
    } catch {
      tile.news2 = null; // the alert service does not run with this API
    }
    tile.render();
  };
  const loadDevices = async () => {
    const devices = await get(path("sites", site.id, "devices"));
    for (const tile of tiles.values()) {
      tile.devices = devices.filter((d) => d.resident === tile.resident.id);
      tile.renderDevices();
    }
    clear($("#gateways")).append(...gatewaySummary(devices, site.timezone).flat());
  };
  const loadAll = async () => {
    await Promise.all([
      queue.load().catch((error) => fail(error, $(".queue-panel"))),
      loadDevices(),
      ...[...tiles.values()].flatMap((tile) => [loadLatest(tile), loadNews2(tile)]),
    ]);
  };
  await loadAll();

  const news2Due = new Map();
  connect(
    site.id,
    {
      alert: (alert) => queue.upsert(alert),
      reading: (event) => {
        const tile = tiles.get(event.resident);
        if (!tile) return;
        tile.reading(event);
        if (!news2Due.has(tile.resident.id)) {
          news2Due.set(
            tile.resident.id,
            setTimeout(() => {
              news2Due.delete(tile.resident.id);
              loadNews2(tile);
            }, NEWS2_EVERY_MS),
          );
        }
      },
      resync: () => loadAll(),
    },
    setLiveState,
  );
  setInterval(() => {
    for (const tile of tiles.values()) tile.renderVitals();
  }, 30000);
  setInterval(() => loadDevices().catch(() => {}), 60000);
  document.body.dataset.ready = "true";
}

main().catch((error) => fail(error));
