// The alert queue page: the home's alerts by state (and of one resident with ?resident=).

import { get, path } from "./api.js";
import { $, $$ } from "./dom.js";
import { connect } from "./live.js";
import { AlertQueue } from "./queue.js";
import { chooseSite, fail, setLiveState, start } from "./shell.js";

async function main() {
  await start({ roles: ["admin", "staff"] });
  const { site } = await chooseSite();
  if (!site) return;
  const residents = await get(path("sites", site.id, "residents"));
  const byId = new Map(residents.map((r) => [r.id, r]));
  const resident = new URLSearchParams(location.search).get("resident");
  if (resident && byId.has(resident)) {
    const note = $("#filter-note");
    note.textContent = `Only the alerts of ${byId.get(resident).name || resident}.`;
    note.hidden = false;
  }
  const boxes = $$("input[name=state]");
  let queue = null;
  const build = async () => {
    $("#queue").replaceChildren();
    queue = new AlertQueue({
      list: $("#queue"),
      empty: $("#queue-empty"),
      announcer: $("#announcer"),
      site: site.id,
      residents: byId,
      states: boxes.filter((b) => b.checked).map((b) => b.value),
      resident: resident && byId.has(resident) ? resident : null,
      canAct: true,
      timeZone: site.timezone,
    });
    await queue.load();
  };
  for (const box of boxes) box.addEventListener("change", () => build().catch(fail));
  await build();
  connect(
    site.id,
    { alert: (alert) => queue.upsert(alert), resync: () => queue.load().catch(fail) },
    setLiveState,
  );
  document.body.dataset.ready = "true";
}

main().catch((error) => fail(error));
