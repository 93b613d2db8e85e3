/* How a text is cut into SMS parts: a port of smss.gsm.alphabet.plan_parts (and of
 * transliterate, given its table), so the send form counts exactly what the server
 * will.  GSM 03.38 7-bit when every character is in the default alphabet or its
 * extension (which count two septets), UCS2 otherwise; 160 septets / 70 UTF-16
 * units in one SMS, 153 / 67 per part of a longer one; a character never
 * straddles two parts.  tests/test_web_counter.py compares it with the Python.
 */
(function (root) {
  "use strict";

  // Index = septet value; 0x1B (the escape) is not a character.
  var DEFAULT_TABLE =
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5" +
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u001b\u00c6\u00e6\u00df\u00c9" +
    " !\"#\u00a4%&'()*+,-./" +
    "0123456789:;<=>?" +
    "\u00a1ABCDEFGHIJKLMNO" +
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7" +
    "\u00bfabcdefghijklmno" +
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0";
  var EXTENSION = "\f^{}\\[~]|\u20ac";

  var SINGLE_SEPTETS = 160, PART_SEPTETS = 153, SINGLE_UNITS = 70, PART_UNITS = 67;

  var septets = new Map();
  for (var i = 0; i < DEFAULT_TABLE.length; i++) {
    if (i !== 0x1b) septets.set(DEFAULT_TABLE[i], 1);
  }
  for (var j = 0; j < EXTENSION.length; j++) septets.set(EXTENSION[j], 2);

  function chars(text) {
    return Array.from(text); // code points, as Python iterates a str
  }

  function isGsm7(text) {
    var list = chars(text);
    for (var k = 0; k < list.length; k++) if (!septets.has(list[k])) return false;
    return true;
  }

  function notGsm7(text) {
    var seen = [];
    chars(text).forEach(function (ch) {
      if (!septets.has(ch) && seen.indexOf(ch) < 0) seen.push(ch);
    });
    return seen;
  }

  function split(list, costs, single, perPart) {
    var total = costs.reduce(function (a, b) { return a + b; }, 0);
    if (total <= single) return { parts: [list.join("")], total: total };
    var parts = [], start = 0, used = 0;
    for (var k = 0; k < list.length; k++) {
      if (used + costs[k] > perPart) {
        parts.push(list.slice(start, k).join(""));
        start = k;
        used = 0;
      }
      used += costs[k];
    }
    parts.push(list.slice(start).join(""));
    return { parts: parts, total: total, lastUsed: used };
  }

  /* {encoding: "gsm7"|"ucs2", parts: [text, ...], units: septets or UTF-16 units in all,
   *  single: capacity of one SMS, perPart: capacity of a part, lastUsed: units in the last part} */
  function planParts(text) {
    var list = chars(text);
    var gsm = list.every(function (ch) { return septets.has(ch); });
    var costs = list.map(function (ch) { return gsm ? septets.get(ch) : ch.length; });
    var single = gsm ? SINGLE_SEPTETS : SINGLE_UNITS;
    var perPart = gsm ? PART_SEPTETS : PART_UNITS;
    var plan = split(list, costs, single, perPart);
    return {
      encoding: gsm ? "gsm7" : "ucs2",
      parts: plan.parts,
      units: plan.total,
      single: single,
      perPart: perPart,
      lastUsed: plan.parts.length > 1 ? plan.lastUsed : plan.total
    };
  }

  /* transliterate(text, table): table maps a character to its plain form (from
   * /static/translit.json, made by smss.web.counter from the Python). */
  function transliterate(text, table) {
    text = text.normalize("NFC");
    if (isGsm7(text)) return text;
    return chars(text).map(function (ch) {
      if (septets.has(ch)) return ch;
      return Object.prototype.hasOwnProperty.call(table, ch) ? table[ch] : ch;
    }).join("");
  }

  root.smssParts = {
    planParts: planParts,
    transliterate: transliterate,
    isGsm7: isGsm7,
    notGsm7: notGsm7
  };
})(typeof window !== "undefined" ? window : this);
