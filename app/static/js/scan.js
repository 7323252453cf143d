// The scan station and step entry (ADR 0026): a STOP panel takes the focus, so that a scanner's
// next code and Enter land nowhere until a person acknowledges it (Tab, then Enter).
// No inline script anywhere: the site's CSP allows scripts from files only (ADR 0019).
document.addEventListener("DOMContentLoaded", function () {
  var stop = document.getElementById("stop");
  if (stop) {
    stop.focus();
    return;
  }
  var wanted = document.querySelector("[data-focus]");
  if (wanted && document.activeElement === document.body) {
    wanted.focus();
  }
});
