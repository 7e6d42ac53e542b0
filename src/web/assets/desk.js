// The reviewer desk's only script, and it is optional: it reads pages in the browser's time
// zone. Without it every page reads in UTC (or the zone typed into the search).
(function () {
  'use strict';
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone) return;
  var inputs = document.querySelectorAll('input[name="tz"]');
  for (var i = 0; i < inputs.length; i++) {
    if (!inputs[i].value) inputs[i].value = zone;
  }
  var body = document.body;
  if (body && body.getAttribute('data-zone-from-browser') === 'yes' && zone !== 'UTC' && zone !== 'Etc/UTC') {
    var url = new URL(window.location.href);
    if (!url.searchParams.has('tz')) {
      url.searchParams.set('tz', zone);
      window.location.replace(url.href);
    }
  }
})();
