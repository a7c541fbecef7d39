% rebase('base.tpl', title='Live')
<div class="page-head">
  <h1>Live</h1>
  <span class="live" id="live" data-live="connecting" role="status" aria-live="polite">Connecting…</span>
</div>
<p class="error" id="live-error" role="alert" hidden></p>
<ul class="line-strip" id="line-strip" aria-label="Lines"></ul>
<section aria-labelledby="rooms-head">
  <h2 id="rooms-head" class="visually-hidden">Conferences</h2>
  <p class="empty" id="no-conferences">No conference is running. Callers who join a room appear here at once.</p>
  <div class="conferences" id="conferences"></div>
</section>
