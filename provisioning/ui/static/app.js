// Progressive enhancement only: every page works without this file.
// The import form shows upload progress (htmx's xhr progress event).
document.addEventListener("htmx:xhr:progress", function (evt) {
  var bar = document.getElementById("import-progress");
  if (bar && evt.detail.lengthComputable) {
    bar.hidden = false;
    bar.value = Math.round((evt.detail.loaded / evt.detail.total) * 100);
  }
});
