/* Live standings of a class's current race: "Here now" and "All time".
 *
 * Starts from the page's json_script "live-data" (the first snapshot, shaped as the socket's
 * "snapshot" message), then follows /ws/classes/<id>/ (README, "Live messages"; snake_case keys).
 * "All time" ranks, at the race's current second, every racer's personal best at that second
 * (GET /api/classes/<id>/all-time/, loaded once per race) together with the live racers' output.
 *
 * Other scripts on the page (ride.js) talk to this one with DOM events on document:
 *   in:  "alleycat:ride-reading"  detail {race_id, second, output}   the local rider's own reading
 *   out: "alleycat:standings"     detail {race_id, total, rows, racer} every standings change
 *   out: "alleycat:all-time"      detail {second, rank, total, approximate, output, best, new_best}
 */
(function () {
  "use strict";
  var section = document.getElementById("live");
  var dataEl = document.getElementById("live-data");
  if (!section || !dataEl) return;
  var data = JSON.parse(dataEl.textContent);

  var TOP_ROWS = 10; // All time: rows shown from the top
  var AROUND = 3; // All time: rows shown above and below the local racer

  var classId = data.class_id;
  var racerId = data.racer_id; // the local racer (ride page, ?racer=, or the logged-in racer); null if none
  var race = data.snapshot.race; // {id, class_id, starts_at, ends_at, status} or null
  var raceId = race ? race.id : null;

  var rowsBody = document.getElementById("standings-rows");
  var ownBody = document.getElementById("own-row");
  var totalEl = document.getElementById("total");
  var statusEl = document.getElementById("live-status");
  var titleEl = document.getElementById("race-title");
  var captionEl = document.getElementById("caption-text");
  var timeLeftEl = document.getElementById("time-left");
  var countdownEl = document.getElementById("countdown");
  var finishedEl = document.getElementById("race-finished");
  var hereNowEl = document.getElementById("here-now");
  var allTimeEl = document.getElementById("all-time");
  var allTimeRows = document.getElementById("all-time-rows");
  var allTimeSecond = document.getElementById("all-time-second");
  var allTimeSummary = document.getElementById("all-time-summary");
  var viewNow = document.getElementById("view-now");
  var viewAllTime = document.getElementById("view-all-time");

  var lastRows = data.snapshot.rows;
  var lastOwn = data.snapshot.racer;
  var lastTotal = data.snapshot.total;
  var board = null; // the All time board of the current race's class
  var boardRace = null; // the race it was loaded for (once per race)
  var rideReading = null; // the local rider's latest reading on the ride page
  var socket = null;
  var retry = 0;
  var lookingForNext = false;

  function setStatus(text) { statusEl.textContent = text; }
  function num(value, digits) { return value == null ? "–" : Number(value).toFixed(digits); }
  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text != null) el.textContent = text;
    return el;
  }
  function emit(name, detail) { document.dispatchEvent(new CustomEvent(name, { detail: detail })); }
  function isLocal(id) { return racerId != null && id === racerId; }

  function racerCell(id, name) {
    var th = cell("th", null);
    th.scope = "row";
    var link = cell("a", name);
    link.href = "/racers/" + id + "/";
    th.appendChild(link);
    return th;
  }

  // A trophy icon (inline SVG: no emoji font needed), named for screen readers.
  var TROPHY_PATH = "M7 3h10v2h3v3a4 4 0 0 1-4 4h-.4A5 5 0 0 1 13 14.9V18h3v2H8v-2h3v-3.1A5 5 0 0 1 8.4 12H8a4 4 0 0 1-4-4V5h3V3zM6 7v1a2 2 0 0 0 1 1.7V7H6zm12 0h-1v2.7A2 2 0 0 0 18 8V7z";
  function trophyIcon(label) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "trophy");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    var title = document.createElementNS(ns, "title");
    title.textContent = label;
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", TROPHY_PATH);
    svg.appendChild(title);
    svg.appendChild(path);
    return svg;
  }
  window.alleycatTrophy = trophyIcon; // shared with ride.js

  function trophy(th) {
    th.appendChild(document.createTextNode(" "));
    th.appendChild(trophyIcon("new best at this second"));
  }

  function markLocal(tr, id) {
    if (!isLocal(id)) return;
    tr.className = (tr.className ? tr.className + " " : "") + "own";
    tr.setAttribute("aria-current", "true");
  }

  // --- Here now --------------------------------------------------------------------------

  function standingsRow(r) {
    var tr = document.createElement("tr");
    tr.dataset.racerId = r.racer_id;
    markLocal(tr, r.racer_id);
    tr.appendChild(cell("td", r.rank, "num"));
    var th = racerCell(r.racer_id, r.name);
    if (r.finished) {
      th.appendChild(document.createTextNode(" "));
      th.appendChild(cell("span", "finished", "tag"));
    }
    tr.appendChild(th);
    tr.appendChild(cell("td", num(r.score, 1), "num score"));
    tr.appendChild(cell("td", r.second, "num opt"));
    tr.appendChild(cell("td", num(r.output, 1), "num"));
    return tr;
  }

  function renderHereNow() {
    var fragment = document.createDocumentFragment();
    if (!lastRows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell("td", raceId ? "No riders yet. They appear here as soon as they pedal." : "Waiting for the next race.");
      td.colSpan = 5;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    lastRows.forEach(function (r) { fragment.appendChild(standingsRow(r)); });
    rowsBody.replaceChildren(fragment);
    var inTop = lastOwn && lastRows.some(function (r) { return r.racer_id === lastOwn.racer_id; });
    ownBody.replaceChildren();
    if (lastOwn && !inTop) ownBody.appendChild(standingsRow(lastOwn));
    totalEl.textContent = lastTotal;
  }

  // --- All time --------------------------------------------------------------------------

  // The second the board ranks: the local rider's own latest second, else the newest second of the
  // live rows (outputs and bests are then of the same second), else the race clock's.
  function boardSecond() {
    if (rideReading && rideReading.race_id === raceId) return rideReading.second;
    var newest = 0;
    lastRows.concat(lastOwn ? [lastOwn] : []).forEach(function (r) { if (!r.finished && r.second > newest) newest = r.second; });
    if (newest) return newest;
    if (race && race.starts_at) {
      var s = Math.floor((Date.now() - Date.parse(race.starts_at)) / 1000) + 1;
      if (s >= 1 && Date.now() < Date.parse(race.ends_at)) return s;
    }
    return null;
  }

  // Riders racing now (not finished), by racer id, with their current output.
  function liveRiders() {
    var riders = {};
    lastRows.concat(lastOwn ? [lastOwn] : []).forEach(function (r) {
      if (!r.finished) riders[r.racer_id] = { racer_id: r.racer_id, name: r.name, value: r.output };
    });
    if (rideReading && rideReading.race_id === raceId && racerId != null) {
      var known = riders[racerId];
      riders[racerId] = { racer_id: racerId, name: known ? known.name : data.racer_name || "You", value: rideReading.output };
    }
    return riders;
  }

  function ownBest(id, s, sec) {
    if (board.racer && board.racer.racer_id === id) {
      var best = board.racer.bests[s - 1];
      return best == null ? null : best;
    }
    for (var i = 0; i < sec.entries.length; i++) if (sec.entries[i][1] === id) return sec.entries[i][2];
    return null;
  }

  // Ghosts ranked above an output: exact when every ghost is listed, else between two listed ranks.
  function ghostsAbove(sec, value) {
    var entries = sec.entries;
    for (var i = 0; i < entries.length; i++) {
      if (entries[i][2] <= value) {
        var after = i === 0 ? 0 : entries[i - 1][0];
        return { count: after, exact: entries[i][0] === after + 1 };
      }
    }
    return { count: sec.count, exact: !entries.length || entries[entries.length - 1][0] === sec.count };
  }

  // Every ghost and live rider at second s, ranked (standard ranking: output desc, racer id asc).
  function rankAllTime(s) {
    var sec = board.seconds[s - 1] || { second: s, count: 0, stride: 1, entries: [] };
    var riders = liveRiders();
    var items = [];
    var ghostIds = {};
    sec.entries.forEach(function (e) {
      ghostIds[e[1]] = true;
      if (!riders[e[1]]) items.push({ racer_id: e[1], name: board.names[String(e[1])], value: e[2], rank: e[0], live: false, approximate: false });
    });
    var live = Object.keys(riders).map(function (key) {
      var rider = riders[key];
      var best = ownBest(rider.racer_id, s, sec);
      return {
        racer_id: rider.racer_id, name: rider.name, value: rider.value, live: true, best: best,
        new_best: best != null && rider.value > best, approximate: false
      };
    });
    var exact = sec.stride === 1;
    function before(a, b) { return b.value - a.value || a.racer_id - b.racer_id; }
    if (exact) {
      items = items.concat(live).sort(before);
      items.forEach(function (item, index) { item.rank = index + 1; });
    } else {
      // Listed ghosts keep their rank among bests plus the riders ahead of them; a rider's rank counts
      // the ghosts above (known to within the stride) and the riders ahead.
      items.forEach(function (item) {
        item.rank += live.filter(function (l) { return before(l, item) < 0; }).length;
      });
      live.forEach(function (l) {
        var above = ghostsAbove(sec, l.value);
        l.rank = above.count + live.filter(function (o) { return o !== l && before(o, l) < 0; }).length + 1;
        l.approximate = !above.exact;
      });
      items = items.concat(live).sort(function (a, b) { return a.rank - b.rank || before(a, b); });
    }
    var riderGhosts = live.filter(function (l) { return ghostIds[l.racer_id]; }).length;
    return { second: s, items: items, total: exact ? items.length : sec.count + live.length - riderGhosts, exact: exact };
  }

  function allTimeRow(item) {
    var tr = document.createElement("tr");
    tr.dataset.racerId = item.racer_id;
    if (item.live) tr.className = "live";
    markLocal(tr, item.racer_id);
    tr.appendChild(cell("td", (item.approximate ? "≈" : "") + item.rank, "num"));
    var th = racerCell(item.racer_id, item.name);
    if (item.live) {
      th.appendChild(document.createTextNode(" "));
      th.appendChild(cell("span", "riding", "tag"));
    }
    if (item.new_best) trophy(th);
    tr.appendChild(th);
    tr.appendChild(cell("td", num(item.value, 1), "num output"));
    tr.appendChild(cell("td", item.live ? num(item.best, 1) : "", "num opt"));
    return tr;
  }

  function gapRow() {
    var tr = cell("tr", null, "gap");
    var td = cell("td", "…");
    td.colSpan = 4;
    tr.appendChild(td);
    return tr;
  }

  function renderAllTime() {
    var s = boardSecond();
    allTimeSecond.textContent = s == null ? "–" : s;
    if (!board) return;
    if (s == null) {
      allTimeRows.replaceChildren();
      allTimeSummary.textContent = "The board starts with the race.";
      return;
    }
    var ranked = rankAllTime(s);
    var items = ranked.items;
    var localIndex = -1;
    items.forEach(function (item, index) { if (isLocal(item.racer_id)) localIndex = index; });
    // The top rows, then the local racer's neighbourhood: never the whole class.
    var shown = [];
    items.forEach(function (item, index) {
      if (index < TOP_ROWS || (localIndex >= 0 && Math.abs(index - localIndex) <= AROUND)) shown.push(index);
    });
    var fragment = document.createDocumentFragment();
    if (!items.length) {
      var tr = cell("tr", null, "empty");
      var td = cell("td", "No personal bests at this second yet.");
      td.colSpan = 4;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    shown.forEach(function (index, position) {
      if (position > 0 && index !== shown[position - 1] + 1) fragment.appendChild(gapRow());
      fragment.appendChild(allTimeRow(items[index]));
    });
    if (shown.length && shown[shown.length - 1] < items.length - 1) fragment.appendChild(gapRow());
    allTimeRows.replaceChildren(fragment);

    var local = localIndex >= 0 ? items[localIndex] : null;
    var text = "Second " + s + ": " + ranked.total + (ranked.exact ? "" : " (about)") + " all-time bests and riders now.";
    if (local && local.live) {
      text = "Second " + s + ": you rank " + (local.approximate ? "about " : "") + local.rank + " of " + ranked.total +
        " against everyone's all-time best at this second.";
      if (local.new_best) text += " New personal best at this second (was " + num(local.best, 1) + ")!";
    } else if (local) {
      text += " Your best here ranks " + local.rank + ".";
    }
    allTimeSummary.textContent = text;
    if (local && local.live && local.new_best) allTimeSummary.prepend(trophyIcon("trophy"), " ");
    if (local && local.live) {
      emit("alleycat:all-time", {
        second: s, rank: local.rank, total: ranked.total, approximate: local.approximate,
        output: local.value, best: local.best, new_best: local.new_best
      });
    }
  }

  function wantBoard() { return viewAllTime.checked || !!data.ride; }

  function loadBoard() {
    if (raceId == null || boardRace === raceId) { renderAllTime(); return; }
    var forRace = raceId;
    boardRace = raceId;
    allTimeSummary.textContent = "Loading everyone's personal bests…";
    var url = data.all_time_url + (racerId != null ? "?racer=" + racerId : "");
    // "no-cache": revalidate (ETag) so that a new race sees the bests the last race added.
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-cache" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (body) {
        if (forRace !== raceId) return;
        board = body;
        if (!board.racer_count) allTimeSummary.textContent = "No personal bests in this class yet.";
        renderAllTime();
      })
      .catch(function () {
        if (forRace === raceId) boardRace = null;
        allTimeSummary.textContent = "Personal bests are unavailable right now.";
      });
  }

  function render() {
    renderHereNow();
    if (board) renderAllTime();
    emit("alleycat:standings", { race_id: raceId, total: lastTotal, rows: lastRows, racer: lastOwn });
  }

  function showView() {
    var allTime = viewAllTime.checked;
    hereNowEl.hidden = allTime;
    allTimeEl.hidden = !allTime;
    if (allTime) loadBoard();
  }

  // --- races and messages ------------------------------------------------------------------

  function showFinished(id) {
    document.getElementById("finished-race-id").textContent = "#" + id;
    document.getElementById("finished-link").href = "/races/" + id + "/";
    finishedEl.hidden = false;
  }

  function showRace(next) {
    // A newer race means the one shown has ended, even if its race.finished push was missed.
    if (raceId != null && next && next.id > raceId) showFinished(raceId);
    race = next;
    raceId = next ? next.id : null;
    titleEl.textContent = next ? "Race #" + next.id : "No race running";
    captionEl.textContent = next ? "Live standings of race #" + next.id : "Live standings";
    if (countdownEl && next) countdownEl.setAttribute("datetime", next.ends_at);
    timeLeftEl.hidden = !next;
    var upcoming = document.getElementById("upcoming");
    if (upcoming && next) upcoming.remove();
    lastRows = [];
    lastOwn = null;
    lastTotal = 0;
    board = null;
    boardRace = null;
    rideReading = null;
    if (wantBoard()) loadBoard();
    render();
    tick();
  }

  function onStandings(msg) {
    if (msg.type === "snapshot") {
      if (!msg.race) { if (raceId != null) showRace(null); return; }
      if (raceId != null && msg.race.id < raceId) return;
      if (msg.race.id !== raceId) showRace(msg.race);
      else race = msg.race;
    } else if (msg.race_id !== raceId) {
      return; // another race: the class socket sends a snapshot when it switches
    }
    lastRows = msg.rows;
    lastOwn = msg.racer;
    lastTotal = msg.total;
    render();
  }

  function onRaceStarted(next) {
    if (!next || next.class_id !== classId) return;
    if (raceId != null && next.id < raceId) return;
    if (next.id !== raceId) showRace(next);
    setStatus("Race #" + next.id + " has started.");
  }

  function onRaceFinished(ended) {
    if (!ended || ended.class_id !== classId) return;
    showFinished(ended.id);
    if (ended.id === raceId) timeLeftEl.hidden = true;
  }

  function onMessage(event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (msg.type === "snapshot" || msg.type === "standings") onStandings(msg);
    else if (msg.type === "race.started") onRaceStarted(msg.race);
    else if (msg.type === "race.finished") onRaceFinished(msg.race);
    else if (msg.type === "error") setStatus(msg.message);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + data.ws_path + (racerId != null ? "?racer=" + racerId : "");
    socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      retry = 0;
      setStatus("Live: standings update by themselves.");
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      socket = null;
      if (event.code === 4400 || event.code === 4404) {
        setStatus("Live updates are not available for this page.");
        return; // refused for good: a reconnect would be refused again
      }
      retry = Math.min(retry + 1, 6);
      setStatus("Connection lost; reconnecting…");
      window.setTimeout(connect, 500 * Math.pow(2, retry - 1));
    });
  }

  // No race.started by a few seconds after the end (a missed push): ask the schedule API.
  function findNextRace() {
    if (lookingForNext) return;
    lookingForNext = true;
    fetch(data.current_race_url, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (current) {
        if (current && (raceId == null || current.id > raceId)) {
          onRaceStarted({ id: current.id, class_id: current.class_id, starts_at: current.starts_at, ends_at: current.ends_at, status: current.status });
        }
      })
      .catch(function () { /* try again on the next tick */ })
      .then(function () { window.setTimeout(function () { lookingForNext = false; }, 5000); });
  }

  function tick() {
    if (!race) { findNextRace(); return; }
    var left = Date.parse(race.ends_at) - Date.now();
    if (countdownEl) countdownEl.textContent = clock(left);
    if (left < -5000) findNextRace();
    if (board && !lastRows.length && !rideReading) renderAllTime(); // the clock moves the board on
  }

  document.addEventListener("alleycat:ride-reading", function (event) {
    rideReading = event.detail;
    if (board) renderAllTime();
  });
  function onViewChosen() {
    // The view is part of the address (#all-time), so it can be shared and survives a reload.
    var url = window.location.pathname + window.location.search + (viewAllTime.checked ? "#all-time" : "");
    window.history.replaceState(null, "", url);
    showView();
  }
  viewNow.addEventListener("change", onViewChosen);
  viewAllTime.addEventListener("change", onViewChosen);
  window.addEventListener("hashchange", function () {
    viewAllTime.checked = window.location.hash === "#all-time";
    viewNow.checked = !viewAllTime.checked;
    showView();
  });
  if (window.location.hash === "#all-time") viewAllTime.checked = true;
  showView();
  if (wantBoard()) loadBoard();
  render();
  window.setInterval(tick, 1000);
  tick();
  connect();
})();
