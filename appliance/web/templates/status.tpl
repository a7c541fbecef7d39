% rebase('base.tpl', title='Status')
<div class="page-head">
  <h1>Lines</h1>
  <span class="live" id="live" data-live="connecting" role="status" aria-live="polite">Connecting…</span>
</div>
<p class="empty"{{!'' if not lines else ' hidden'}} id="no-lines">No lines yet. Each <code>[[line]]</code> in <code>config.toml</code> appears here once its modem reports.</p>
<div class="lines" id="lines">
% for name, line in lines.items():
  <article class="card line" data-line="{{name}}" data-state="{{line['state']}}">
    <div class="line-head">
      <h2>{{name}}</h2>
      <div class="bars" data-bars="{{signal_bars(line['detail'])}}" aria-hidden="true"><i></i><i></i><i></i><i></i></div>
      <span class="state" data-state="{{line['state']}}">{{state_label(line['state'])}}</span>
    </div>
    <dl class="details">
    % for key, label, text in detail_rows(line['detail']):
      <div data-field="{{key}}"><dt>{{label}}</dt><dd>{{text}}</dd></div>
    % end
    </dl>
  </article>
% end
</div>
