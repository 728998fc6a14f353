// The rules editor checks the text as it is typed (no framework): the server answers with
// each error's line and column, shown under the editor.
(function () {
  var form = document.getElementById("editeur");
  if (!form) { return; }
  var text = document.getElementById("text");
  var verdict = document.getElementById("verdict");
  var timer = null;
  function show(answer) {
    verdict.textContent = "";
    var p = document.createElement("p");
    if (answer.valid) {
      verdict.className = "verdict";
      p.textContent = "Le texte est valide.";
      verdict.appendChild(p);
      return;
    }
    verdict.className = "verdict faux";
    p.textContent = "Le texte n'est pas valide :";
    verdict.appendChild(p);
    var ul = document.createElement("ul");
    answer.errors.forEach(function (e) {
      var li = document.createElement("li");
      li.textContent = e;
      ul.appendChild(li);
    });
    verdict.appendChild(ul);
  }
  function check() {
    var body = new URLSearchParams();
    body.set("csrf", form.elements["csrf"].value);
    body.set("text", text.value);
    fetch(form.dataset.validate, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) { if (answer) { show(answer); } })
      .catch(function () {});
  }
  text.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
})();
