// Starts GraphiQL on this page's own URL. A file, not an inline script: the page's
// Content-Security-Policy allows scripts from calltrail only.
(function () {
  'use strict';
  var defaultQuery = [
    '# calltrail: the newest calls. Put an API key, if the server asks for one, in the',
    '# Headers tab below: {"Authorization": "Bearer <key>"}. The Docs (book icon) list',
    '# every type and field.',
    '{',
    '  calls(first: 10) {',
    '    totalCount',
    '    nodes { callId endedAt direction status customerNumber pickedBy durationSeconds }',
    '  }',
    '}',
    ''
  ].join('\n');
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: window.location.pathname }),
    defaultQuery: defaultQuery,
    defaultEditorToolsVisibility: 'headers',
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false
  }));
})();
