/* The bike in the browser: one message a second over /ws/ride/ with cadence and resistance. */
(function () {
  "use strict";
  var form = document.getElementById("ride-form");
  if (!form) return;
  var racerId = Number(form.dataset.racerId);
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
      raceId = data.race_id;
      raceEl.textContent = "#" + data.race_id;
      secondEl.textContent = data.second;
      outputEl.textContent = Number(data.output).toFixed(1);
      raceEndsAt = data.ends_at ? Date.parse(data.ends_at) : null;
      if (data.event === "final") {
        setStatus("Finished race #" + data.race_id + ". Well ridden!");
        stop(false);
      } else {
        setStatus("Riding in race #" + data.race_id + ".");
      }
    } else if (data.type === "error") {
      setStatus(ERRORS[data.code] || data.message || "Error: " + data.code);
      if (data.code === "race_over") stop(false);
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
    if (riding) return;
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
