// Hookhub dashboard behaviour that needs no server round trip. No external code.
// - <form data-confirm="question">: asks before submitting.
// - <button data-copy="text"> (or data-copy-target="#id"): copies to the clipboard and says so.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
document.addEventListener("click", function (event) {
  var button = event.target instanceof Element ? event.target.closest("[data-copy],[data-copy-target]") : null;
  if (!button) { return; }
  var text = button.getAttribute("data-copy");
  if (text === null) {
    var source = document.querySelector(button.getAttribute("data-copy-target"));
    text = source ? (source.value !== undefined ? source.value : source.textContent) : "";
  }
  var done = function () {
    var before = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = before; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {});
  } else {
    var area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }
});
