% rebase('base.tpl', title=title)
<section class="card narrow">
  <h1>{{title}}</h1>
  <p>{{message}}</p>
  <p><a class="button" href="/">Back to the appliance</a></p>
</section>
