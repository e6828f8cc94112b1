/* The bike in the browser: one message a second over /ws/ride/ with cadence and resistance (the bike
 * message of docs/contracts.md, camelCase as the seed defines it); the server's replies are snake_case
 * (leaderboards/ride.py). While riding: live rank, the gap to the rider ahead and personal-best cues
 * (from live.js's events); after the race, a summary from GET /api/racers/<id>/races/<race_id>/. */
(function () {
  "use strict";
  var form = document.getElementById("ride-form");
  if (!form) return;
  var classSelect = document.getElementById("ride-class");
  var cadence = document.getElementById("cadence");
  var resistance = document.getElementById("resistance");
  var cadenceValue = document.getElementById("cadence-value");
  var resistanceValue = document.getElementById("resistance-value");
  var startButton = document.getElementById("ride-start");
  var stopButton = document.getElementById("ride-stop");
  var statusEl = document.getElementById("ride-status");
  var raceEl = document.getElementById("ride-race");
  var secondEl = document.getElementById("ride-second");
  var outputEl = document.getElementById("ride-output");
  var rankEl = document.getElementById("ride-rank");
  var gapEl = document.getElementById("ride-gap");
  var cueEl = document.getElementById("ride-cue");
  var summaryEl = document.getElementById("ride-summary");
  var dataEl = document.getElementById("live-data");
  var ride = dataEl ? JSON.parse(dataEl.textContent).ride : null; // null: no class to ride in
  var racerId = ride ? ride.racer_id : null;
  var bestScore = ride ? ride.best_score : null; // personal best in this class before this ride
  var cheeredBest = false;

  var socket = null;
  var timer = null;
  var riding = false;
  var raceEndsAt = null;
  var raceId = null;  // the race this ride is in, once the server has said which

  var ERRORS = {
    wrong_racer: "You can only ride as your own racer.",
    rate_limited: "Too many messages: slow down.",
    no_current_race: "This class has no race running right now.",
    invalid: "The bike sent an invalid reading.",
    stream_unavailable: "The race server is busy; your reading was not recorded.",
    not_json: "The bike sent something that is not JSON.",
    race_over: "That race is over. Press Start to join the current one."
  };

  function setStatus(text) { statusEl.textContent = text; }
  function show() {
    cadenceValue.textContent = cadence.value;
    resistanceValue.textContent = resistance.value;
  }
  function nudge(input, delta) {
    input.value = String(Math.min(Number(input.max), Math.max(Number(input.min), Number(input.value) + delta)));
    show();
  }

  function send(event) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({
      event: event,
      racerId: racerId,
      raceId: raceId,
      classId: Number(classSelect.value),
      cadence: Number(cadence.value),
      resistance: Number(resistance.value),
      deviceTimestamp: Date.now()
    }));
  }

  function onMessage(message) {
    var data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    if (data.type === "ack") {
      if (raceId !== data.race_id) cheeredBest = false;
      raceId = data.race_id;
      raceEl.textContent = "#" + data.race_id;
      secondEl.textContent = data.second;
      outputEl.textContent = Number(data.output).toFixed(1);
      raceEndsAt = Date.parse(data.ends_at);
      document.dispatchEvent(new CustomEvent("alleycat:ride-reading", {
        detail: { race_id: data.race_id, second: data.second, output: data.output }
      }));
      if (data.event === "final") {
        setStatus("Finished race #" + data.race_id + ". Well ridden!");
        stop(false);
        showSummary(data.race_id);
      } else {
        setStatus("Riding in race #" + data.race_id + ".");
      }
    } else if (data.type === "error") {
      setStatus(ERRORS[data.code] || data.message);
      if (data.code === "race_over") {
        stop(false);
        if (raceId != null) showSummary(raceId);
      }
    }
  }

  function everySecond() {
    // The last second of the race carries the "final" message.
    if (raceEndsAt != null && raceEndsAt - Date.now() <= 1000) {
      send("final");
      raceEndsAt = null;
      return;
    }
    send("update");
  }

  function start() {
    if (riding || racerId == null) return;
    riding = true;
    startButton.disabled = true;
    stopButton.disabled = false;
    classSelect.disabled = true;
    setStatus("Connecting…");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + form.dataset.wsPath);
    socket.addEventListener("open", function () {
      setStatus("Connected. Pedal!");
      everySecond();
      timer = window.setInterval(everySecond, 1000);
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      if (riding) setStatus(event.code === 4401 || event.code === 4403 ? "Please log in as a racer to ride." : "Disconnected.");
      stop(false);
    });
  }

  function stop(sendFinal) {
    if (timer) window.clearInterval(timer);
    timer = null;
    if (sendFinal && socket && socket.readyState === WebSocket.OPEN) {
      send("final");
      var closing = socket;
      window.setTimeout(function () { closing.close(); }, 1500);
    } else if (socket && socket.readyState === WebSocket.OPEN) {
      socket.close();
    }
    socket = null;
    riding = false;
    startButton.disabled = false;
    stopButton.disabled = true;
    classSelect.disabled = false;
  }

  // --- moments: rank, gap, personal-best cues --------------------------------------------

  function cue(text) {
    cueEl.textContent = text;
    if (window.alleycatTrophy) cueEl.prepend(window.alleycatTrophy("trophy"), " ");
  }

  document.addEventListener("alleycat:standings", function (event) {
    var standings = event.detail;
    var own = standings.racer;
    if (!own || standings.race_id !== raceId) return;
    rankEl.textContent = own.rank + " of " + standings.total;
    var ahead = null;
    standings.rows.forEach(function (row) { if (row.rank === own.rank - 1) ahead = row; });
    if (own.rank === 1) gapEl.textContent = "You lead";
    else if (ahead) gapEl.textContent = (ahead.score - own.score).toFixed(1) + " behind " + ahead.name;
    else gapEl.textContent = "–";
    if (!cheeredBest && bestScore != null && own.score > bestScore) {
      cheeredBest = true;
      cue("You have passed your personal best score in this class (" + bestScore.toFixed(1) + ")!");
    }
  });

  document.addEventListener("alleycat:all-time", function (event) {
    var moment = event.detail;
    if (moment.new_best) {
      cue("New best at second " + moment.second + ": " + moment.output.toFixed(1) +
        (moment.best != null ? " (was " + moment.best.toFixed(1) + ")" : "") + ".");
    }
  });

  // --- after the race: the summary (the final result lands a few seconds after the last message) ---

  var summaryTimer = null;

  function showSummary(forRace) {
    if (!ride || summaryTimer) return;
    summaryEl.hidden = false;
    var link = document.getElementById("ride-summary-link");
    link.textContent = "#" + forRace;
    link.href = "/races/" + forRace + "/";
    var status = document.getElementById("ride-summary-status");
    status.textContent = "Waiting for your final result…";
    var attempts = 0;
    function poll() {
      attempts += 1;
      fetch(ride.summary_url + forRace + "/", { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (summary) {
          if (summary && (summary.status === "finished" || attempts >= 30)) {
            fillSummary(summary);
            status.textContent = summary.status === "finished" ? "Your result is in." : "No final message arrived: DNF.";
            summaryTimer = null;
            if (summary.personal_best) bestScore = summary.score;
            return;
          }
          if (attempts >= 30) { status.textContent = "Your result is not in yet; see the race results later."; summaryTimer = null; return; }
          summaryTimer = window.setTimeout(poll, 2000);
        })
        .catch(function () { summaryTimer = window.setTimeout(poll, 2000); });
    }
    summaryTimer = window.setTimeout(poll, 1000);
  }

  function fillSummary(summary) {
    document.getElementById("summary-rank").textContent =
      (summary.rank == null ? "DNF" : summary.rank) + " of " + summary.total;
    document.getElementById("summary-score").textContent = summary.score.toFixed(1);
    var best = document.getElementById("summary-best");
    best.textContent = summary.personal_best
      ? "New personal best"
      : (summary.best_score != null ? "No, best " + summary.best_score.toFixed(1) : "–");
    if (summary.personal_best && window.alleycatTrophy) best.prepend(window.alleycatTrophy("trophy"), " ");
    var previous = document.getElementById("summary-previous");
    if (summary.previous) {
      var diff = summary.score - summary.previous.score;
      previous.textContent = "#" + summary.previous.race_id + ": " + summary.previous.score.toFixed(1) + " ";
      var span = document.createElement("span");
      span.className = diff >= 0 ? "ahead" : "behind";
      span.textContent = (diff >= 0 ? "+" : "") + diff.toFixed(1);
      previous.appendChild(span);
    } else {
      previous.textContent = "First race in this class";
    }
  }

  cadence.addEventListener("input", show);
  resistance.addEventListener("input", show);
  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", function () { stop(true); });
  classSelect.addEventListener("change", function () {
    if (!riding) window.location.search = "?class=" + encodeURIComponent(classSelect.value);
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
    var handled = true;
    if (event.key === "ArrowUp") nudge(cadence, 5);
    else if (event.key === "ArrowDown") nudge(cadence, -5);
    else if (event.key === "ArrowRight") nudge(resistance, 5);
    else if (event.key === "ArrowLeft") nudge(resistance, -5);
    else handled = false;
    if (handled) event.preventDefault();
  });
  show();
})();
