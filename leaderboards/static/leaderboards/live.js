/* Live "Here now" standings: WebSocket /ws/classes/<id>/, race switches, the "All time" ghost. */
(function () {
  "use strict";
  var section = document.getElementById("live");
  if (!section) return;

  var classId = Number(section.dataset.classId);
  var raceId = section.dataset.raceId ? Number(section.dataset.raceId) : null;
  var racerId = section.dataset.racerId ? Number(section.dataset.racerId) : null;
  var rowsBody = document.getElementById("standings-rows");
  var ownBody = document.getElementById("own-row");
  var totalEl = document.getElementById("total");
  var statusEl = document.getElementById("live-status");
  var titleEl = document.getElementById("race-title");
  var captionEl = document.getElementById("caption-text");
  var timeLeftEl = document.getElementById("time-left");
  var countdownEl = document.getElementById("countdown");
  var finishedEl = document.getElementById("race-finished");
  var toggle = document.getElementById("all-time");
  var table = document.getElementById("standings");

  var endsAt = countdownEl && countdownEl.getAttribute("datetime") ? Date.parse(countdownEl.getAttribute("datetime")) : null;
  var lastRows = [];
  var lastOwn = null;
  var ghost = null; // {racers: {id: [best per second]}} of the current race's class
  var ghostRace = null; // race id the ghost was loaded for (loaded once per race)
  var socket = null;
  var retry = 0;
  var lookingForNext = false;

  function setStatus(text) { statusEl.textContent = text; }
  function num(value, digits) { return value == null || value === "" ? "–" : Number(value).toFixed(digits); }
  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  // A row as the consumer sends it (snake_case, README "Live messages").
  function normalise(row) {
    return {
      rank: row.rank, racerId: row.racer_id, name: row.name, score: row.score,
      second: row.second, output: row.output, finished: !!row.finished
    };
  }

  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text != null) el.textContent = text;
    return el;
  }

  function renderRow(r) {
    var tr = document.createElement("tr");
    tr.dataset.racerId = r.racerId;
    if (racerId != null && Number(r.racerId) === racerId) {
      tr.className = "own";
      tr.setAttribute("aria-current", "true");
    }
    tr.appendChild(cell("td", r.rank, "num"));
    var th = cell("th", null);
    th.scope = "row";
    var link = cell("a", r.name);
    link.href = "/racers/" + r.racerId + "/";
    th.appendChild(link);
    if (r.finished) {
      th.appendChild(document.createTextNode(" "));
      th.appendChild(cell("span", "finished", "tag"));
    }
    tr.appendChild(th);
    tr.appendChild(cell("td", num(r.score, 1), "num score"));
    tr.appendChild(cell("td", r.second, "num"));
    tr.appendChild(cell("td", num(r.output, 1), "num"));
    var best = null;
    if (ghost && ghost.racers) {
      var series = ghost.racers[String(r.racerId)];
      if (series && r.second >= 1 && r.second <= series.length) best = series[r.second - 1];
    }
    tr.appendChild(cell("td", num(best, 1), "num ghost"));
    var diff = cell("td", best == null ? "–" : (r.output - best >= 0 ? "+" : "") + num(r.output - best, 1), "num ghost");
    if (best != null) diff.classList.add(r.output >= best ? "ahead" : "behind");
    tr.appendChild(diff);
    return tr;
  }

  function render() {
    var fragment = document.createDocumentFragment();
    if (!lastRows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell("td", raceId ? "No riders yet. They appear here as soon as they pedal." : "Waiting for the next race.");
      td.colSpan = 7;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    lastRows.forEach(function (r) { fragment.appendChild(renderRow(r)); });
    rowsBody.replaceChildren(fragment);
    var inTop = lastOwn && lastRows.some(function (r) { return Number(r.racerId) === Number(lastOwn.racerId); });
    ownBody.replaceChildren();
    if (lastOwn && !inTop) ownBody.appendChild(renderRow(lastOwn));
  }

  function showRace(id, endsAtIso) {
    // A newer race means the one shown has ended, even if its race.finished push was missed
    // (a reconnect in between): point at its results.
    if (raceId != null && id != null && id > raceId) showFinished(raceId);
    raceId = id;
    section.dataset.raceId = id == null ? "" : id;
    titleEl.textContent = id == null ? "No race running" : "Race #" + id;
    captionEl.textContent = id == null ? "Live standings" : "Live standings of race #" + id;
    endsAt = endsAtIso ? Date.parse(endsAtIso) : null;
    if (countdownEl && endsAtIso) countdownEl.setAttribute("datetime", endsAtIso);
    timeLeftEl.hidden = endsAt == null;
    var upcoming = document.getElementById("upcoming");
    if (upcoming && id != null) upcoming.remove();
    lastRows = [];
    lastOwn = null;
    totalEl.textContent = "0";
    ghost = null;
    ghostRace = null;
    if (toggle && toggle.checked) loadGhost();
    render();
    tick();
  }

  function onStandings(msg) {
    var msgRace = msg.race_id != null ? Number(msg.race_id) : null;
    if (msg.type === "snapshot") {
      // The consumer's view of the class's current race (null between races).
      var race = msg.race;
      if (!race) {
        if (raceId != null) showRace(null, null);
        lastRows = [];
        lastOwn = null;
        render();
        return;
      }
      if (Number(race.id) !== raceId || endsAt == null) {
        if (raceId != null && Number(race.id) < raceId) return;
        if (Number(race.id) !== raceId) showRace(Number(race.id), race.ends_at);
        else { endsAt = Date.parse(race.ends_at); timeLeftEl.hidden = false; tick(); }
      }
    } else if (msgRace != null && raceId != null && msgRace !== raceId) {
      if (msgRace < raceId) return; // a late update of an earlier race
      showRace(msgRace, null); // a newer race: follow it (its times come with race.started)
    } else if (msgRace != null && raceId == null) {
      showRace(msgRace, null);
    }
    lastRows = (msg.rows || []).map(normalise);
    var own = msg.racer || null;
    lastOwn = own ? normalise(own) : null;
    totalEl.textContent = msg.total != null ? msg.total : lastRows.length;
    render();
  }

  function onRaceStarted(race) {
    if (!race || Number(race.class_id) !== classId) return;
    if (raceId != null && Number(race.id) < raceId) return;
    if (Number(race.id) !== raceId || endsAt == null) showRace(Number(race.id), race.ends_at);
    setStatus("Race #" + race.id + " has started.");
  }

  function showFinished(id) {
    document.getElementById("finished-race-id").textContent = "#" + id;
    document.getElementById("finished-link").href = "/races/" + id + "/";
    finishedEl.hidden = false;
  }

  function onRaceFinished(race) {
    if (!race || Number(race.class_id) !== classId) return;
    showFinished(race.id);
    if (Number(race.id) === raceId) timeLeftEl.hidden = true;
  }

  function onMessage(event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    var type = String(msg.type || "").replace("_", ".");
    if (type === "race.started") onRaceStarted(msg.race);
    else if (type === "race.finished") onRaceFinished(msg.race);
    else if (Array.isArray(msg.rows)) onStandings(msg);
    else if (type === "error" && msg.message) setStatus(msg.message);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + section.dataset.wsPath + (racerId != null ? "?racer=" + racerId : "");
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
    fetch("/api/classes/" + classId + "/current-race/", { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (race) {
        if (race && race.id && (raceId == null || race.id > raceId)) {
          onRaceStarted({ id: race.id, class_id: race.class_id, ends_at: race.ends_at });
        }
      })
      .catch(function () { /* try again on the next tick */ })
      .then(function () { window.setTimeout(function () { lookingForNext = false; }, 5000); });
  }

  function tick() {
    if (endsAt == null) {
      if (raceId == null) findNextRace();
      return;
    }
    var left = endsAt - Date.now();
    if (countdownEl) countdownEl.textContent = clock(left);
    if (left < -5000) findNextRace();
  }

  function loadGhost() {
    if (raceId == null || ghostRace === raceId) { render(); return; }
    var forRace = raceId;
    ghostRace = raceId;
    setStatus("Loading personal bests…");
    // "no-cache": revalidate (ETag) so a new race sees the bests the last race added.
    fetch(section.dataset.historyUrl, { headers: { Accept: "application/json" }, cache: "no-cache" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (data) {
        if (forRace !== raceId) return;
        ghost = data && data.racers ? data : { racers: {} };
        setStatus(Object.keys(ghost.racers).length ? "Comparing with personal bests." : "No personal bests in this class yet.");
        render();
      })
      .catch(function () {
        if (forRace === raceId) ghostRace = null;
        setStatus("Personal bests are unavailable right now.");
      });
  }

  if (toggle) {
    toggle.addEventListener("change", function () {
      table.classList.toggle("show-ghost", toggle.checked);
      if (toggle.checked) loadGhost();
    });
  }

  // Take over the server-rendered rows so the first update does not flash.
  Array.prototype.forEach.call(rowsBody.querySelectorAll("tr[data-racer-id]"), function (tr) {
    var c = tr.children;
    lastRows.push({
      rank: Number(c[0].textContent), racerId: Number(tr.dataset.racerId), name: c[1].querySelector("a").textContent,
      score: Number(c[2].textContent), second: Number(c[3].textContent), output: Number(c[4].textContent),
      finished: !!c[1].querySelector(".tag")
    });
  });

  window.setInterval(tick, 1000);
  tick();
  connect();
})();
