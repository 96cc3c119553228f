// Rotary console: progressive enhancement only. Every page works without this script.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Value editors: show the key/value rows or the plaintext box.
  function syncKinds(editor) {
    var checked = editor.querySelector("input[name=kind]:checked");
    var kind = checked ? checked.value : "kv";
    editor.querySelectorAll("[data-kind]").forEach(function (el) {
      el.classList.toggle("shown", el.getAttribute("data-kind") === kind);
    });
  }
  document.querySelectorAll(".value-editor").forEach(function (editor) {
    syncKinds(editor);
    editor.addEventListener("change", function () { syncKinds(editor); });
  });

  // "Add row": clone the last row of the table before the button, emptied.
  document.querySelectorAll("[data-add-row]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var body = btn.parentElement.querySelector("tbody[data-rows]");
      if (!body || !body.lastElementChild) return;
      var row = body.lastElementChild.cloneNode(true);
      var n = body.children.length + 1;
      row.querySelectorAll("input").forEach(function (input) {
        input.value = "";
        var label = input.getAttribute("aria-label") || "";
        input.setAttribute("aria-label", label.replace(/\d+$/, String(n)));
      });
      body.appendChild(row);
      row.querySelector("input").focus();
    });
  });

  // Client-side sort of the current page by a column (rotation status, next rotation).
  document.querySelectorAll("th[data-client-sort] button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var th = btn.parentElement;
      var table = th.closest("table");
      var index = Array.prototype.indexOf.call(th.parentElement.children, th);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) {
        if (h.hasAttribute("data-client-sort")) h.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > index; });
      rows.sort(function (a, b) {
        var x = a.cells[index].textContent.trim(), y = b.cells[index].textContent.trim();
        return asc ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });

  // Rotation form: preview the next windows as you type.
  var form = document.getElementById("rotation-form");
  var out = document.getElementById("preview");
  if (form && out) {
    var timer = null, seq = 0;
    var preview = function () {
      var params = new URLSearchParams();
      ["schedule", "days", "expression", "duration"].forEach(function (name) {
        var el = form.elements[name];
        if (el) params.set(name, el.value);
      });
      var mine = ++seq;
      fetch("/console/preview?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (mine !== seq) return;
          out.textContent = "";
          if (data.Error) {
            var p = document.createElement("p");
            p.className = "bad";
            p.setAttribute("role", "alert");
            p.textContent = data.Error;
            out.appendChild(p);
            return;
          }
          var ol = document.createElement("ol");
          (data.Windows || []).forEach(function (w) {
            var li = document.createElement("li");
            li.textContent = w.Start + " – " + w.End;
            ol.appendChild(li);
          });
          out.appendChild(ol);
        })
        .catch(function () {});
    };
    // Show the custom-days or expression field only when that schedule is chosen.
    var schedule = form.elements["schedule"];
    var syncSchedule = function () {
      form.querySelectorAll("[data-when]").forEach(function (el) {
        el.hidden = schedule.value !== el.getAttribute("data-when");
      });
    };
    if (schedule) {
      schedule.addEventListener("change", syncSchedule);
      syncSchedule();
    }
    form.querySelectorAll("[data-preview]").forEach(function (el) {
      ["input", "change"].forEach(function (type) {
        el.addEventListener(type, function () {
          clearTimeout(timer);
          timer = setTimeout(preview, 250);
        });
      });
    });
    preview();
  }
})();
