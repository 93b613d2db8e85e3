/* The send form: live character and part counter, recipient count, one submit. */
(function () {
  "use strict";

  var form = document.getElementById("send-form");
  if (!form) return;
  var text = document.getElementById("text");
  var numbers = document.getElementById("numbers");
  var out = document.getElementById("counter");
  var why = document.getElementById("counter-why");
  var maxParts = parseInt(form.getAttribute("data-max-parts"), 10) || 10;
  var table = null;

  function recipients() {
    return numbers.value.split(/[\n,;]+/).map(function (s) { return s.trim(); })
      .filter(function (s) { return s.length > 0; }).length;
  }

  function update() {
    var value = text.value;
    var sendable = table ? window.smssParts.transliterate(value, table) : value;
    var plan = window.smssParts.planParts(sendable);
    var count = plan.parts.length;
    var gsm = plan.encoding === "gsm7";
    var capacity = count > 1 ? plan.perPart : plan.single;
    var left = capacity - plan.lastUsed;
    var label = (gsm ? "GSM-7" : "Unicode (UCS-2)") + " \u00b7 " + plan.units +
      (gsm ? " character" : " unit") + (plan.units === 1 ? "" : "s") + " \u00b7 " +
      count + " SMS" + (count > 1 ? " parts" : "") + " \u00b7 " + left + " left in this " +
      (count > 1 ? "part" : "SMS");
    var people = recipients();
    if (people > 1) label += " \u00b7 \u00d7 " + people + " numbers = " + count * people + " SMS";
    out.textContent = label;
    out.setAttribute("data-parts", String(count));
    out.setAttribute("data-encoding", plan.encoding);
    out.classList.toggle("over", count > maxParts);
    if (count > maxParts) {
      why.textContent = "Too long: " + count + " parts, at most " + maxParts + " allowed.";
    } else if (!gsm) {
      var odd = window.smssParts.notGsm7(sendable).slice(0, 12);
      why.textContent = "Not in the GSM alphabet: " + odd.join(" ") +
        " \u2014 each SMS holds 70 instead of 160.";
    } else {
      why.textContent = "";
    }
  }

  text.addEventListener("input", update);
  numbers.addEventListener("input", update);
  form.addEventListener("submit", function () {
    var button = form.querySelector("button[type=submit]");
    window.setTimeout(function () { button.disabled = true; }, 0); // one click, one send
  });

  if (form.getAttribute("data-transliterate") === "1") {
    fetch(form.getAttribute("data-translit-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (t) { table = t; update(); })
      .catch(function () { /* counted without transliteration */ });
  }
  update();
})();
