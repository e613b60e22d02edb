// Time travel for the plan page. Every picture it shows was drawn when the page was
// written, from the engine's state for that (known at, as of) pair; this script only
// picks one and swaps it in. It folds nothing.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("travel-data").textContent);
  var svg = document.querySelector("svg.plan-chart");
  var viewGroup = document.getElementById("view");
  var known = document.getElementById("known");
  var asof = document.getElementById("asof");
  var knownLabel = document.getElementById("known-label");
  var asofLabel = document.getElementById("asof-label");
  var markers = data.events.map(function (id) {
    return svg.querySelector('[data-event-id="' + id + '"]');
  });
  var rows = data.events.map(function (id) { return document.getElementById("ev-" + id); });
  var nValid = data.valid.length;
  var shown = -1;

  // An RFC 3339 time as microseconds since the epoch (Date.parse keeps only milliseconds).
  function micros(text) {
    var m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$/i.exec(text);
    if (!m) { return NaN; }
    var whole = Date.parse(m[1] + (m[3] || "Z"));
    var fraction = ((m[2] || "") + "000000").slice(0, 6);
    return whole * 1000 + parseInt(fraction, 10);
  }

  // The latest kept instant at or before `text` ("now"/"latest"/nothing: the last).
  function pick(axis, text) {
    var last = axis.length - 1;
    if (!text || text === "now" || text === "latest") { return last; }
    if (/^\d+$/.test(text)) { return Math.min(parseInt(text, 10), last); }
    var at = micros(text);
    if (isNaN(at)) { return last; }
    var found = 0;
    for (var i = 0; i < last; i++) { if (axis[i] <= at) { found = i; } }
    return found;
  }

  function label(list, i, latest) {
    return list[i] === null ? latest : list[i];
  }

  function show(k, v, remember) {
    var id = data.grid[k * nValid + v];
    var combo = data.views[id];
    known.value = k;
    asof.value = v;
    var knownText = label(data.record, k, "now");
    var asofText = label(data.valid, v, "latest");
    knownLabel.textContent = knownText;
    asofLabel.textContent = asofText;
    if (id !== shown) {
      shown = id;
      viewGroup.innerHTML = combo[0].map(function (i) { return data.pieces[i]; }).join("");
      document.getElementById("stage-table").innerHTML = data.tables[combo[1]];
      var head = data.heads[combo[2]];
      document.getElementById("plan-name").textContent = head[0];
      var status = document.getElementById("plan-status");
      status.textContent = head[1];
      status.className = "badge status-" + head[1];
      document.getElementById("plan-active").textContent = head[2];
      document.getElementById("plan-events").textContent = head[3];
      var hash = document.getElementById("plan-hash");
      hash.textContent = head[4].slice(0, 12);
      hash.title = head[4];
      var marks = data.marks[combo[3]];
      for (var i = 0; i < markers.length; i++) {
        var mark = marks.charAt(i);
        var el = markers[i];
        if (mark === "x") { el.setAttribute("data-deleted", "true"); } else { el.removeAttribute("data-deleted"); }
        if (mark === "u") { el.setAttribute("data-view", "unrecorded"); }
        else if (mark === "f") { el.setAttribute("data-view", "later"); }
        else { el.removeAttribute("data-view"); }
        if (rows[i]) { rows[i].setAttribute("data-view", mark); }
      }
    }
    svg.setAttribute("data-known-at", knownText);
    svg.setAttribute("data-as-of", asofText);
    svg.setAttribute("data-state-hash", data.heads[combo[2]][4]);
    svg.setAttribute("data-view-index", String(id));
    var now = data.record[k] === null && data.valid[v] === null;
    document.getElementById("viewing").textContent = now
      ? "Current state: as known now, latest valid time."
      : "Showing the state as known at " + knownText + ", as of " + asofText + ".";
    if (remember) {
      var target = "#known_at=" + knownText + "&as_of=" + asofText;
      history.replaceState(null, "", now ? location.pathname + location.search : target);
    }
  }

  function fromAddress() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) { params[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1)); }
    });
    show(pick(data.recordUs, params.known_at), pick(data.validUs, params.as_of), false);
    var marker = params.event && svg.querySelector('[data-event-id="' + params.event + '"]');
    if (marker) { marker.focus(); }
  }

  known.addEventListener("input", function () { show(+known.value, +asof.value, true); });
  asof.addEventListener("input", function () { show(+known.value, +asof.value, true); });
  document.getElementById("reset").addEventListener("click", function () {
    show(data.record.length - 1, nValid - 1, true);
  });
  window.addEventListener("hashchange", function () {
    if (/known_at=|as_of=|event=/.test(location.hash)) { fromAddress(); }
  });

  // Details on hover or keyboard focus, from the marker's row in the events table.
  var details = document.getElementById("details");
  function describe(marker) {
    var row = document.getElementById("ev-" + marker.getAttribute("data-event-id"));
    if (!row) { return; }
    var list = document.createElement("dl");
    Array.prototype.forEach.call(row.cells, function (cell) {
      var dt = document.createElement("dt");
      dt.textContent = cell.getAttribute("data-label");
      var dd = document.createElement("dd");
      var source = cell.querySelector("pre") || cell;
      if (cell.hasAttribute("data-full")) {
        dd.textContent = cell.getAttribute("data-full");
      } else if (cell.querySelector("pre")) {
        var pre = document.createElement("pre");
        pre.textContent = source.textContent;
        dd.appendChild(pre);
      } else {
        dd.innerHTML = cell.innerHTML;
      }
      list.appendChild(dt);
      list.appendChild(dd);
    });
    details.innerHTML = "";
    details.appendChild(list);
    details.setAttribute("data-event-id", marker.getAttribute("data-event-id"));
    details.hidden = false;
    var box = marker.getBoundingClientRect();
    var width = details.offsetWidth, height = details.offsetHeight;
    var left = Math.min(Math.max(8, box.left + box.width / 2 - width / 2), window.innerWidth - width - 8);
    var top = box.bottom + 8;
    if (top + height > window.innerHeight - 8) { top = Math.max(8, box.top - height - 8); }
    details.style.left = left + "px";
    details.style.top = top + "px";
  }
  function hide() { details.hidden = true; }
  markers.forEach(function (marker) {
    if (!marker) { return; }
    marker.addEventListener("mouseenter", function () { describe(marker); });
    marker.addEventListener("focus", function () { describe(marker); });
    marker.addEventListener("mouseleave", hide);
    marker.addEventListener("blur", hide);
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") { hide(); } });

  document.getElementById("travel").hidden = false;
  fromAddress();
}());
